"""The state of a batch under refinement, as one object that drops rows: which images are still refining, their
images and latents, the optimizer with its moments, a context model's rounding state, per-image lambdas, and why
and when each image left."""
import torch


class RefiningBatch:
    """Rows are the images still refining (`images[j]` is row j's image index); per-image records cover all images.

    x: the rows' images (B, 3, H, W); y, z: their latents, leaves Adam optimizes (z None without z); centres: a
    context model's rounding centres for the next relaxed step (the previous iterate's means), start: its last
    check's hard y_hat (where the next fixed point starts); lmbdas: per-row lambdas (a rate target) or None;
    nonfinite: per row, whether a relaxed loss went non-finite since the last check.
    Per image: lmbda (the lambda at the end), stopped_step (early stopping, max_seconds), nonfinite_step.
    """

    def __init__(self, x, y, z, lr, lmbda, per_image_lambdas, memory_format):
        self.lr, self.memory_format = lr, memory_format
        batch = x.shape[0]
        self.images = list(range(batch))
        self.x = x
        self.y = y.contiguous(memory_format=memory_format).detach().requires_grad_()
        self.z = None if z is None else z.contiguous(memory_format=memory_format).detach().requires_grad_()
        self.optimizer = torch.optim.Adam(self.latents, lr=lr)
        self.centres = self.start = None
        self.exact_checks = False  # a context model whose checks are computed as its decoder computes (refiner.py)
        self.lmbdas = torch.full((batch,), lmbda, device=x.device) if per_image_lambdas else None
        self.nonfinite = torch.zeros(batch, dtype=torch.bool, device=x.device)
        self.lmbda, self.stopped_step, self.nonfinite_step = [lmbda] * batch, [None] * batch, [None] * batch
        self.last_check = 0

    @property
    def latents(self):
        return [self.y] if self.z is None else [self.y, self.z]

    @property
    def size(self):
        return tuple(self.x.shape[-2:])

    def flag_nonfinite(self, relaxed_loss):
        self.nonfinite |= ~torch.isfinite(relaxed_loss.detach())

    def nonfinite_rows(self):
        """Per row, whether its relaxed loss or its latents went non-finite since the last check."""
        with torch.no_grad():
            for latent in self.latents:
                self.nonfinite |= ~torch.isfinite(latent).flatten(1).all(1)
        return self.nonfinite.tolist()

    def set_lambdas(self, values):
        """New per-row lambdas (a rate target's step), recorded as the rows' images' lambdas."""
        self.lmbdas = torch.tensor(values, device=self.x.device)
        for image, value in zip(self.images, self.lmbdas.tolist()):
            self.lmbda[image] = value

    def end_check(self, step, leaving):
        """After the check of step: drop the leaving rows (keeping the optimizer's moments of the others) and clear
        the non-finite flags."""
        self.last_check = step
        if leaving:
            rows = [j for j in range(len(self.images)) if j not in leaving]
            self.images = [self.images[j] for j in rows]
            if self.images:
                self._keep(rows)
        self.nonfinite = torch.zeros(len(self.images), dtype=torch.bool, device=self.x.device)

    def _keep(self, rows):
        index = torch.tensor(rows, device=self.x.device)
        old = self.latents
        kept = [t.detach()[index].contiguous(memory_format=self.memory_format).requires_grad_() for t in old]
        optimizer = torch.optim.Adam(kept, lr=self.lr)
        for old_param, new_param in zip(old, kept):
            state = self.optimizer.state.get(old_param)
            if state:
                optimizer.state[new_param] = {key: (value if value.dim() == 0 else value[index]).clone()
                                              for key, value in state.items()}
        self.optimizer = optimizer
        self.x = self.x[index]
        self.y, self.z = kept[0], None if self.z is None else kept[1]
        self.centres = None if self.centres is None else self.centres[rows]
        self.start = None if self.start is None else self.start[rows]
        self.lmbdas = None if self.lmbdas is None else self.lmbdas[index]
