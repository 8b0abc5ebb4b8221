"""SGARound: the op as an nn.Module whose temperature is set between steps."""
import torch

from .config import RoundingConfig
from .op import validate_tau, sga_round


class SGARound(torch.nn.Module):
    """`SGARound(method="ssl", classes=2, a=2.3)(y, means=None)`; set `.tau` each step (a float > 0).

    Parameters are validated when the module is built; `.hard` switches straight-through rounding.
    """

    def __init__(self, method="ssl", classes=2, *, tau=1.0, hard=False, a=None, r=None, n=None, backend="auto"):
        super().__init__()
        self.config = RoundingConfig(method=method, classes=classes, hard=hard, a=a, r=r, n=n)
        self.tau = tau
        self.backend = backend

    @property
    def tau(self):
        return self._tau

    @tau.setter
    def tau(self, value):
        self._tau = validate_tau(value)

    @property
    def hard(self):
        return self.config.hard

    @hard.setter
    def hard(self, value):
        cfg = self.config
        self.config = RoundingConfig(cfg.method, cfg.classes, value, cfg.a, cfg.r, cfg.n, cfg.eps)

    def forward(self, y, means=None, generator=None):
        cfg = self.config
        return sga_round(y, self._tau, cfg.method, cfg.classes, means=means, hard=cfg.hard, a=cfg.a, r=cfg.r,
                         n=cfg.n, generator=generator, backend=self.backend)

    def extra_repr(self):
        cfg = self.config
        params = ", ".join(f"{k}={getattr(cfg, k)}" for k in ("a", "r", "n") if getattr(cfg, k) is not None)
        return f"method={cfg.method!r}, classes={cfg.classes}, tau={self._tau:g}, hard={cfg.hard}" + \
            (f", {params}" if params else "")
