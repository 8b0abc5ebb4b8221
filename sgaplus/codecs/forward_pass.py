"""One pass of a model's own forward (or compress) for the generic adapter (forward.py): the latents being refined
substituted where the model produces them, and every rounding it performs replaced (docs/codecs.md, "A model
written as published codecs are").

Substitution: a model with a g_a module gets y as g_a's output; a model whose analysis is written inline in its
forward gets y copied, in place, into the tensor its forward hands to h_a (autograd follows the copy to y), so
whatever the model later slices of that tensor holds the refined values. z is h_a's output.

Roundings, relaxed: each entropy model's quantization (EntropyBottleneck, GaussianConditional) and each
straight-through rounding of the model's module (`ste_round(v - mu) + mu`) gets the shared relaxed sample of its
centred value (shared_samples.py): one sample per latent, whatever the order, slicing or masking. Hard: the
entropy models round around their centres as CompressAI's quantize does, and the model's straight-through
functions run as they are. Any other torch.round is counted (a rounding the adapter cannot see).
"""
import contextlib
import sys
from dataclasses import dataclass, field

import torch

from ..errors import ModelError
from .base import hard_rounding, round_around
from .shared_samples import SharedSamples


class UnsupportedModel(ModelError):
    """A model the generic adapter cannot refine correctly (said before any work)."""


@dataclass
class Call:
    """One GaussianConditional call of a pass: its input and the sample it returned."""
    value: torch.Tensor
    sample: torch.Tensor


@dataclass
class Pass:
    """What one forward pass saw and returned."""
    x_hat: torch.Tensor = None
    likelihoods: list = field(default_factory=list)
    bottleneck: int = 0  # EntropyBottleneck calls
    gaussian: list = field(default_factory=list)  # Calls of GaussianConditionals, in order
    hidden: int = 0  # torch.round calls outside the replaced roundings
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
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    bottlenecks = [m for m in model.modules() if type(m) is EntropyBottleneck]
    conditionals = [m for m in model.modules() if isinstance(m, GaussianConditional)]
    return bottlenecks, conditionals


def likelihood_of(entropy_model, value, *args):
    likelihood = entropy_model._likelihood(value, *args)
    likelihood = likelihood[0] if isinstance(likelihood, tuple) else likelihood
    return entropy_model.likelihood_lower_bound(likelihood) if entropy_model.use_likelihood_bound else likelihood


def model_modules(model):
    """The Python modules whose globals may hold the model's straight-through function: those of the classes of
    the model and of its submodules (and their bases), less torch's."""
    names = {cls.__module__ for module in model.modules() for cls in type(module).__mro__}
    return [sys.modules[name] for name in names if name in sys.modules and not name.startswith(("torch", "builtins"))]


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


def substituted(codec, y, z, seen):
    """A context in which the model's forward (or compress) sees y as its latents and z as h_a's output (None:
    h_a runs, on the model's own latents when y is None too)."""
    stack = contextlib.ExitStack()
    inline = codec.inline_analysis
    if y is not None and not inline:
        stack.enter_context(swapped(codec.model, "g_a", Constant(y)))
        seen.y = y
    hyper = HyperAnalysis(codec.h_a, y if inline else None, z, seen, type(codec.model).__name__)
    stack.enter_context(swapped(codec.h_a_owner, "h_a", hyper))
    return stack


class Interception:
    """Within `with Interception(codec, y, z, z_rounding, y_rounding) as seen:`, the model's forward sees y and z as
    its latents, its roundings replaced; `seen` (a Pass) fills as it runs. y_rounding is the refiner's rounding, or
    hard_rounding (the encoder's: the model's own roundings); z_rounding gives z's sample around its medians."""

    def __init__(self, codec, y, z, z_rounding, y_rounding):
        self.codec, self.y, self.z, self.z_rounding = codec, y, z, z_rounding
        self.hard = y_rounding is hard_rounding
        self.shared = None if self.hard else SharedSamples(y_rounding)
        self.seen, self.inside = Pass(), 0
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        model, stack = self.codec.model, self.stack
        stack.enter_context(substituted(self.codec, self.y, self.z, self.seen))
        bottlenecks, conditionals = entropy_models(model)
        for bottleneck in bottlenecks:
            stack.enter_context(swapped(bottleneck, "forward", self.bottleneck_forward(bottleneck), instance=True))
        for conditional in conditionals:
            stack.enter_context(swapped(conditional, "forward", self.gaussian_forward(conditional), instance=True))
        for module in model_modules(model) + self.codec.ops_modules():
            for name in self.codec.straight_through_names(module):
                stack.enter_context(swapped(module, name, self.straight_through(getattr(module, name))))
        stack.enter_context(swapped(torch, "round", self.counted(torch.round)))
        stack.enter_context(swapped(torch.Tensor, "round", self.counted(torch.Tensor.round)))
        if self.shared is not None and self.z is not None:  # the model's own rounding of z - medians: z's sample
            centred = self.z - self.codec.z_offsets()
            self.shared.register(centred, centred)
        return self.seen

    def __exit__(self, *exc):
        self.stack.close()
        return False

    def own(self, function, *args):
        """Run one of the replaced roundings (its torch.round calls are not hidden ones)."""
        self.inside += 1
        try:
            return function(*args)
        finally:
            self.inside -= 1

    def counted(self, original):
        def counting(*args, **kwargs):
            if not self.inside:
                self.seen.hidden += 1
            return original(*args, **kwargs)
        return counting

    def bottleneck_forward(self, bottleneck):
        def forward(value, training=None):
            centre = bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
            sample = self.own(self.z_rounding, value, centre)
            self.seen.bottleneck += 1
            channels_first = sample.transpose(0, 1).reshape(sample.shape[1], 1, -1)
            likelihood = likelihood_of(bottleneck, channels_first)
            return sample, likelihood.reshape(sample.shape[1], sample.shape[0], *sample.shape[2:]).transpose(0, 1)
        return forward

    def gaussian_forward(self, conditional):
        def forward(value, scales, means=None, training=None):
            if self.hard:
                sample = self.own(round_around, value, means)
            else:
                centred = value if means is None else value - means
                sample = self.own(self.shared, centred)
                sample = sample if means is None else sample + means
            self.seen.gaussian.append(Call(value, sample))
            return sample, likelihood_of(conditional, sample, scales, means)
        return forward

    def straight_through(self, function):
        """The model's straight-through function, run as it is (hard) or giving the shared sample (relaxed)."""
        def rounded(value, *args, **kwargs):
            return self.own(function, value, *args, **kwargs) if self.hard else self.own(self.shared, value)
        return rounded
