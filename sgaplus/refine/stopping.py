"""Early stopping per image: stop an image once its best true loss has stopped improving."""
import math
from dataclasses import dataclass

from ..ops._common import check_positive


@dataclass(frozen=True)
class EarlyStopping:
    """Stop an image when its best true loss has not improved by more than a relative `min_delta` over the
    last `patience` checks (a check every `check_every` steps of the refiner)."""
    patience: int = 20
    min_delta: float = 1e-3

    def __post_init__(self):
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {self.patience!r}")
        check_positive("min_delta", self.min_delta)
        if self.min_delta >= 1:
            raise ValueError(f"min_delta is relative: it must lie in (0, 1), got {self.min_delta!r}")

    def tracker(self, base_losses):
        return PlateauTracker(self, base_losses)


class PlateauTracker:
    """Per image: the loss of its last significant improvement and the checks since."""

    def __init__(self, rule, base_losses):
        self.rule = rule
        self.reference = [loss if math.isfinite(loss) else math.inf for loss in base_losses]
        self.stale = [0] * len(base_losses)

    def plateaued(self, image, best_loss):
        """Record one check of `image` whose best true loss is now best_loss; True when it should stop."""
        if best_loss < self.reference[image] * (1 - self.rule.min_delta):
            self.reference[image], self.stale[image] = best_loss, 0
        else:
            self.stale[image] += 1
        return self.stale[image] >= self.rule.patience
