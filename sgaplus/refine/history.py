"""The history of a refinement: one entry per true-loss check, over all images of the batch."""
from .results import Check


class History:
    """`entries`: one per check, {step, tau, sweeps, relaxed_loss, loss, bpp, psnr, mse}, each per-image field a
    list over the whole batch: a refining image's checked value, or for an image that has left the batch its best
    (relaxed_loss: None). sweeps: the check's fixed-point sweeps (a context model; 0 otherwise)."""

    def __init__(self):
        self.entries = []

    def record(self, step, tau, check: Check, images, best, relaxed_loss=None):
        """Add the check of step; images: the image of each checked row; best: the BestLatents of the batch."""
        row = {image: j for j, image in enumerate(images)}
        batch = len(best.step)
        entry = {"step": step, "tau": tau, "sweeps": check.sweeps, "relaxed_loss": None if relaxed_loss is None else
                 [relaxed_loss[row[i]] if i in row else None for i in range(batch)]}
        for name, values in vars(check.metrics).items():
            kept = getattr(best.metrics, name)
            entry[name] = [values[row[i]] if i in row else kept[i] for i in range(batch)]
        self.entries.append(entry)
