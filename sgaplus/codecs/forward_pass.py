"""One pass of a model's own forward (or compress) for the generic adapter (forward.py): the latents being refined
substituted where the model produces them, and every rounding it performs replaced (docs/codecs.md, "A model
written as published codecs are").

Substitution (forward_slots.py): y and z where the model produces them, by a module or an operation.

Roundings, relaxed: every rounding the forward performs (an entropy model's quantize of any class, a
straight-through rounding wherever it is written) gets the shared relaxed sample of its centred value
(forward_roundings.py, shared_samples.py): one sample per latent, whatever the order, slicing or masking. Hard: the
model's own roundings run as they are. Entropy models are found by what they do: a submodule with compress and
decompress whose forward returns (values, likelihoods).
"""
import contextlib
from dataclasses import dataclass, field

import torch

from ..errors import ModelError
from .forward_roundings import RelaxedRoundings


class UnsupportedModel(ModelError):
    """A model the generic adapter cannot refine correctly (said before any work)."""


@dataclass
class Call:
    """One call of y's entropy model in a pass: its input and the values it returned."""
    value: torch.Tensor
    sample: torch.Tensor


@dataclass
class Pass:
    """What one forward pass saw and returned."""
    x_hat: torch.Tensor = None
    likelihoods: list = field(default_factory=list)
    bottleneck: int = 0  # calls of z's entropy model
    gaussian: list = field(default_factory=list)  # Calls of y's entropy models (of any class), in order
    y: torch.Tensor = None  # the tensor holding the latents the model's forward used (its h_a input when inline)
    z: torch.Tensor = None  # what h_a made of its input, when it ran


class Constant(torch.nn.Module):
    """Stands in for g_a: returns the latents being refined, whatever it is given."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, *args, **kwargs):
        return self.value


class HyperAnalysis(torch.nn.Module):
    """Stands in for h_a: puts y into the tensor it is given (y None: a g_a model's, already there) and returns z
    (None: what h_a makes of its input, recorded)."""

    def __init__(self, h_a, y, z, seen, name):
        super().__init__()
        self.h_a, self.y, self.z, self.seen, self.name = h_a, y, z, seen, name

    def forward(self, received, *args, **kwargs):
        if self.y is not None:
            if not isinstance(received, torch.Tensor) or received.shape != self.y.shape:
                raise UnsupportedModel(f"{self.name}'s forward gives h_a a {_shape(received)}, not its latents y "
                                       f"{tuple(self.y.shape)}: give the model a g_a module (its analysis) so that "
                                       f"the generic adapter can substitute y there")
            received.copy_(self.y)
            self.seen.y = received
        if self.z is not None:
            return self.z
        self.seen.z = self.h_a(received, *args, **kwargs)
        return self.seen.z


class Captured(Exception):
    """Raised by `Capture` to end a forward once h_a has its input."""

    def __init__(self, value):
        super().__init__("h_a's input captured")
        self.value = value


class Capture(torch.nn.Module):
    """Stands in for h_a to find an inline analysis' latents: what the forward hands h_a, then stop."""

    def forward(self, received, *args, **kwargs):
        raise Captured(received)


def _shape(value):
    return f"tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def entropy_models(model):
    """(z's entropy model, y's candidates), found by what they do, not by their class: a submodule with compress and
    decompress methods (a coder of symbols) is a candidate; the one with medians (CompressAI's EntropyBottleneck
    interface, `_get_medians`) is z's, the others y's. A candidate counts as an entropy model when its forward returns
    (values, likelihoods) in a pass (`Interception`). None for z's when there is not exactly one."""
    from compressai.models import CompressionModel
    coders = [module for module in model.modules() if module is not model and not isinstance(module, CompressionModel)
              and callable(getattr(module, "compress", None)) and callable(getattr(module, "decompress", None))]
    bottlenecks = [module for module in coders if callable(getattr(module, "_get_medians", None))]
    return (bottlenecks[0] if len(bottlenecks) == 1 else None), [m for m in coders if m not in bottlenecks]


@contextlib.contextmanager
def swapped(owner, name, value, instance=False):
    """owner.name = value for the duration (instance=True: an attribute of the instance, deleted afterwards)."""
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if instance:
            delattr(owner, name)
        else:
            setattr(owner, name, before)


class Interception:
    """Within `with Interception(codec, y, z, shared) as seen:` (and the substitution of y and z, forward_slots.py,
    entered inside it), `seen` (a Pass) fills as the model's forward runs with the calls of its entropy models (of
    any class) that return (values, likelihoods). shared: the pass's SharedSamples (relaxed: every rounding gives
    its sample, forward_roundings.py), or None (hard: the model's own roundings)."""

    def __init__(self, codec, y, z, shared):
        self.codec, self.y, self.z, self.shared = codec, y, z, shared
        self.seen, self.open = Pass(), []  # open: per entropy-model call running, the calls recorded inside it
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        stack, bottleneck = self.stack, self.codec.bottleneck
        for module in [bottleneck, *self.codec.y_coders]:
            stack.enter_context(swapped(module, "forward", self.recorded(module, module is bottleneck), instance=True))
        if self.shared is not None:
            if self.z is not None:  # the model's own rounding of z - medians gives the refiner's sample: z itself
                centred = self.z - self.codec.z_offsets()
                self.shared.register(centred, centred)
            stack.enter_context(RelaxedRoundings(self.shared))
        return self.seen

    def __exit__(self, *exc):
        self.stack.close()
        return False

    def recorded(self, module, is_bottleneck):
        """module's own forward, its call recorded when it returns (values, likelihoods), the calls made inside it
        then forgotten (an entropy model built on another is one)."""
        forward = module.forward

        def recording(value, *args, **kwargs):
            self.open.append([])
            try:
                out = forward(value, *args, **kwargs)
            finally:
                inner = self.open.pop()
            is_entropy_model = isinstance(out, tuple) and len(out) == 2 and all(
                isinstance(part, torch.Tensor) for part in out)
            self.record([(is_bottleneck, Call(value, out[0]))] if is_entropy_model else inner)
            return out
        return recording

    def record(self, calls):
        if self.open:
            self.open[-1] += calls
            return
        for is_bottleneck, call in calls:
            if is_bottleneck:
                self.seen.bottleneck += 1
            else:
                self.seen.gaussian.append(call)
