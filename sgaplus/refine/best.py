"""The best latents so far, per image: the refiner keeps, for each image, the checked latents with the lowest true
loss (or, with a rate target, the best place against the target), with their metrics and step."""
from .results import Check


class BestLatents:
    """Per image of the batch (indexed by image, not by row): the best checked metrics, the step of the check that
    found them, and the hard latents and reconstruction. Starts from the base check (all rows present)."""

    def __init__(self, base: Check, goals=None):
        self.metrics = base.metrics.copy()
        self.step = [0] * len(base.metrics.loss)
        self.x_hat, self.y_hat, self.z_hat = base.x_hat, base.y_hat, base.z_hat
        self.goals = goals  # a rate target's ImageTarget per image, or None

    def beaten(self, image, row, check: Check):
        """Whether row's checked latents beat the image's best: a lower true loss, or with a rate target a better
        place against it (ImageTarget.rank)."""
        metrics = check.metrics
        if self.goals is None:
            return metrics.loss[row] < self.metrics.loss[image]
        goal = self.goals[image]
        return goal.rank(metrics.bpp[row], metrics.distortion[row]) < goal.rank(self.metrics.bpp[image],
                                                                                self.metrics.distortion[image])

    def offer(self, image, row, check: Check, step):
        """Keep row's checked latents as the image's best if they beat it."""
        if not self.beaten(image, row, check):
            return
        for name, values in vars(self.metrics).items():
            values[image] = getattr(check.metrics, name)[row]
        self.step[image] = step
        self.x_hat[image], self.y_hat[image] = check.x_hat[row], check.y_hat[row]
        if self.z_hat is not None:
            self.z_hat[image] = check.z_hat[row]

    def mean(self, name):
        values = getattr(self.metrics, name)
        return sum(values) / len(values)
