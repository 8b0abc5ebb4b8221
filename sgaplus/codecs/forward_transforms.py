"""The analysis and synthesis of a CompressAI model whose g_a and g_s are not modules (a subclass that analyses and
synthesises with methods of its own, e.g. an invertible network), found by what its forward does (docs/codecs.md,
"A model written as published codecs are"): y is what the forward hands to h_a; the synthesis of a y_hat is the
forward's reconstruction with y_hat put there, its roundings keeping it."""
import torch

from ..errors import ModelError
from .forward_pass import Capture, Captured, HyperAnalysis, Pass, swapped
from .forward_roundings import KeptRoundings


class ForwardTransforms:
    """analysis(x) and synthesis(y_hat) of a model through its forward (each runs the forward once: the synthesis on
    a blank image of the size y_hat comes from, its analysis overwritten)."""

    def __init__(self, model):
        self.model, self.name = model, type(model).__name__
        if not isinstance(getattr(model, "h_a", None), torch.nn.Module):
            raise ModelError(f"{self.name}'s g_a or g_s is not a module and it has no h_a module: sgaplus cannot find "
                             f"its analysis and synthesis; give it g_a and g_s modules")
        self.factor = None  # x's size over y's, from the first analysis

    def analysis(self, x):
        try:
            with swapped(self.model, "h_a", Capture()):
                self.model(x)
        except Captured as captured:
            self.factor = x.shape[-1] // captured.value.shape[-1]
            return captured.value.detach().clone()
        raise ModelError(f"{self.name}'s forward never called h_a: sgaplus cannot find its analysis; give it g_a and "
                         f"g_s modules")

    def synthesis(self, y_hat):
        if self.factor is None:
            self.analysis(torch.zeros(1, 3, 256, 256, device=y_hat.device))
        blank = y_hat.new_zeros(y_hat.shape[0], 3, y_hat.shape[-2] * self.factor, y_hat.shape[-1] * self.factor)
        with swapped(self.model, "h_a", HyperAnalysis(self.model.h_a, y_hat.contiguous(), None, Pass(), self.name)), \
                KeptRoundings():
            return self.model(blank)["x_hat"]
