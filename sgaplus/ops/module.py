"""SGARound: the op as an nn.Module whose temperature is set between steps."""
import torch

from ._common import host_tau
from .rounding import RoundingConfig, sga_round


class SGARound(torch.nn.Module):
    """`SGARound(method="ssl", classes=2, a=2.3)(y, means=None)`; set `.tau` each step.

    `.tau` is a float > 0 or a one-element tensor (a tensor on y's device is never read on the host, as
    in sga_round); parameters are validated when the module is built; `.hard` switches straight-through
    rounding. forward takes sga_round's noise arguments (generator or seed) as they are.
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
        host_tau(value)  # checked now: a number's value, a tensor's shape and gradient
        self._tau = value

    @property
    def hard(self):
        return self.config.hard

    @hard.setter
    def hard(self, value):
        self.config = self.config.with_hard(value)

    def forward(self, y, means=None, generator=None, seed=None):
        return sga_round(y, self._tau, means=means, config=self.config, generator=generator, seed=seed,
                         backend=self.backend)

    def extra_repr(self):
        cfg = self.config
        params = ", ".join(f"{k}={getattr(cfg, k)}" for k in ("a", "r", "n") if getattr(cfg, k) is not None)
        tau = f"{self._tau:g}" if not isinstance(self._tau, torch.Tensor) else "tensor"
        return f"method={cfg.method!r}, classes={cfg.classes}, tau={tau}, hard={cfg.hard}" + \
            (f", {params}" if params else "")
