"""The generic adapter: any CompressAI-style CompressionModel refined through its own forward, compress and
decompress, with no adapter code (docs/codecs.md, "Your own model").

A pass runs the model's forward with g_a and h_a returning the latents being refined, and with every rounding it
performs replaced: each entropy model's quantization (EntropyBottleneck, GaussianConditional: the likelihoods'
input) by the refiner's rounding around the same centre, and each straight-through rounding of the decoder's
latents (`ste_round(v - mu) + mu`, in the model's module) by the same sample, paired with the entropy-model call
whose `value - centre` it rounds. Relaxed, that is one SGA+ sample per latent feeding both the rate and the
decoder; hard, it is the model's own forward.
"""
import contextlib
import sys
from dataclasses import dataclass, field

import torch

from ..errors import ModelError
from .base import HyperpriorCodec, round_around

STRAIGHT_THROUGH_NAMES = ("ste_round", "quantize_ste")  # module-level names of straight-through rounding
PROBE_SIZE = 256  # the synthetic image a model is checked on before any work
RECONSTRUCTION_TOLERANCE = 1e-3  # largest |decoded - forward's reconstruction| of a model whose forward is its encoder
RATE_TOLERANCE = 0.1  # relative, plus 64 bits a string: file size against the forward's estimate


class UnsupportedModel(ModelError):
    """A model the generic adapter cannot refine correctly (said before any work)."""


@dataclass
class Call:
    """One entropy-model call of a pass: its input, the centre it rounds around (None: zero), its sample."""
    value: torch.Tensor
    centre: torch.Tensor
    sample: torch.Tensor
    paired: bool = False


@dataclass
class Pass:
    """What one forward pass saw and returned."""
    x_hat: torch.Tensor = None
    likelihoods: list = field(default_factory=list)
    bottleneck: list = field(default_factory=list)  # Calls of the EntropyBottleneck
    gaussian: list = field(default_factory=list)  # Calls of GaussianConditionals, in order
    unpaired: int = 0  # straight-through calls that matched no entropy-model call
    hidden: int = 0  # torch.round calls outside the replaced roundings


class Constant(torch.nn.Module):
    """Stands in for g_a or h_a: returns the latents being refined, whatever it is given."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, *args, **kwargs):
        return self.value


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
    """The modules whose globals may hold the model's straight-through function: its class's and its bases'."""
    names = {cls.__module__ for cls in type(model).__mro__}
    return [sys.modules[name] for name in names if name in sys.modules and not name.startswith(("torch", "builtins"))]


class Interception:
    """Within `with Interception(codec, y, z, z_sample, y_rounding) as seen:`, the model's forward sees y and z as
    the outputs of g_a and h_a, its roundings replaced; `seen` (a Pass) fills as it runs."""

    def __init__(self, codec, y, z, z_sample, y_rounding):
        self.codec, self.y, self.z = codec, y, z
        self.z_sample, self.y_rounding = z_sample, y_rounding
        self.seen, self.inside = Pass(), 0
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        model, stack = self.codec.model, self.stack
        for name, value in (("g_a", self.y), ("h_a", self.z)):
            if value is not None:
                stack.enter_context(swapped(model, name, Constant(value)))
        bottlenecks, conditionals = entropy_models(model)
        for bottleneck in bottlenecks:
            stack.enter_context(swapped(bottleneck, "forward", self.bottleneck_forward(bottleneck), instance=True))
        for conditional in conditionals:
            stack.enter_context(swapped(conditional, "forward", self.gaussian_forward(conditional), instance=True))
        for module in model_modules(model) + self.codec.ops_modules():
            for name in self.codec.straight_through_names(module):
                stack.enter_context(swapped(module, name, self.straight_through))
        stack.enter_context(swapped(torch, "round", self.counted(torch.round)))
        stack.enter_context(swapped(torch.Tensor, "round", self.counted(torch.Tensor.round)))
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
            sample = self.own(self.z_sample, value, centre)
            self.seen.bottleneck.append(Call(value, centre, sample))
            channels_first = sample.transpose(0, 1).reshape(sample.shape[1], 1, -1)
            likelihood = likelihood_of(bottleneck, channels_first)
            return sample, likelihood.reshape(sample.shape[1], sample.shape[0], *sample.shape[2:]).transpose(0, 1)
        return forward

    def gaussian_forward(self, conditional):
        def forward(value, scales, means=None, training=None):
            stream = len(self.seen.gaussian)
            sample = self.own(self.y_rounding, value, means, stream)
            self.seen.gaussian.append(Call(value, means, sample))
            return sample, likelihood_of(conditional, sample, scales, means)
        return forward

    def straight_through(self, value):
        """The sample of the entropy-model call whose `value - centre` this rounds, minus its centre."""
        for call in self.seen.bottleneck + self.seen.gaussian:
            if not call.paired and call.value.shape == value.shape and torch.equal(centred(call), value):
                call.paired = True
                return call.sample if call.centre is None else call.sample - call.centre
        self.seen.unpaired += 1
        return self.own(lambda v: (torch.round(v) - v).detach() + v, value)


def centred(call):
    return call.value if call.centre is None else call.value - call.centre


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


@dataclass
class ForwardEntropy:
    """What `bits` and the refiner need of a pass: the reconstruction and the likelihoods forward returned."""
    x_hat: torch.Tensor
    likelihoods: list


class ForwardCodec(HyperpriorCodec):
    """Any CompressionModel with one EntropyBottleneck (z) and GaussianConditionals (y, whole or in slices that
    are views of y), refined through its own forward and coded by its own compress and decompress. Checked on a
    synthetic image before any work (UnsupportedModel otherwise). straight_through: more module-level names of
    the model's straight-through rounding function (ste_round and quantize_ste are known)."""

    def __init__(self, model, model_id, lmbda=None, straight_through=()):
        self.model = model.eval().requires_grad_(False)
        self.model_id, self.lmbda = model_id, lmbda
        self.names = STRAIGHT_THROUGH_NAMES + tuple(straight_through)
        missing = [name for name in ("g_a", "h_a") if not isinstance(getattr(model, name, None), torch.nn.Module)]
        if missing:
            raise UnsupportedModel(f"{type(model).__name__} has no {' or '.join(missing)} module: the generic adapter "
                                   f"replaces the outputs of g_a and h_a (a model composed of CompressAI's latent "
                                   f"codecs goes through its own adapter: sgaplus.codec_for)")
        bottlenecks, conditionals = entropy_models(model)
        if len(bottlenecks) != 1 or not conditionals:
            raise UnsupportedModel(f"{type(model).__name__} has {len(bottlenecks)} EntropyBottleneck(s) and "
                                   f"{len(conditionals)} GaussianConditional(s); the generic adapter refines models "
                                   f"with one of the first (z) and at least one of the second (y): register an "
                                   f"adapter for it (docs/codecs.md)")
        self.bottleneck = bottlenecks[0]
        model.update()
        self._probe()

    def ops_modules(self):
        import compressai.ops
        import compressai.ops.ops
        return [compressai.ops, compressai.ops.ops]

    def straight_through_names(self, module):
        from compressai.ops import quantize_ste
        return [name for name, value in vars(module).items() if callable(value) and
                (name in self.names or value is quantize_ste)]

    def to(self, device):
        self.model.to(device)
        return self

    def analysis(self, x):
        return self.model.g_a(x)

    def hyper_analysis(self, y):
        """z: what h_a makes of y in the model's forward (some models give it |y|, or y with other inputs)."""
        captured = []
        h_a = self.model.h_a

        class Recording(torch.nn.Module):
            def forward(self, *args, **kwargs):
                captured.append(h_a(*args, **kwargs))
                return captured[-1]

        with swapped(self.model, "h_a", Recording()):
            self._pass(y, None, round_around, lambda value, means, stream=0: round_around(value, means))
        return captured[0]

    def z_offsets(self):
        return self.bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def hyper_synthesis(self, z_hat, y_shape):
        raise TypeError("the generic adapter drives the model's own forward: it has no separate hyper-synthesis")

    def synthesis(self, y_hat):
        raise TypeError("the generic adapter drives the model's own forward: its reconstruction comes with the "
                        "entropy pass (forward_reconstruction)")

    def forward_reconstruction(self, entropy):
        return entropy.x_hat

    def synthesis_stages(self):
        """None to recompute: the reconstruction comes from the model's forward (checkpointing does not apply)."""
        return []

    def y_latents(self, y, z_hat, rounding, centres=None):
        seen = self._pass(y, z_hat, lambda value, centre: z_hat, rounding)
        return self._y_hat(y, seen), ForwardEntropy(seen.x_hat, seen.likelihoods), None

    def encoder_y(self, y, z_hat, start=None, exact=False):
        with torch.no_grad():
            y_hat, entropy, _ = self.y_latents(y, z_hat, lambda value, means, stream=0: round_around(value, means))
        return y_hat, entropy, None, 0

    def bits(self, y_hat, z_hat, entropy):
        return sum(-torch.log2(likelihood).flatten(1).sum(dim=1) for likelihood in entropy.likelihoods)

    def compress(self, y_hat, z_hat):
        images = []
        for i in range(y_hat.shape[0]):
            with swapped(self.model, "g_a", Constant(y_hat[i:i + 1])), \
                    swapped(self.model, "h_a", Constant(z_hat[i:i + 1])):
                out = self.model.compress(self._dummy_image(y_hat[i:i + 1]))
            images.append([strings[0] for strings in out["strings"]])
        return images

    def decompress(self, strings, z_size):
        return self.model.decompress([[s] for s in strings], list(z_size))["x_hat"]

    # the passes ---------------------------------------------------------------------------------------------------
    def _dummy_image(self, y):
        """What forward and compress are given for x: g_a is replaced, so only its shape can matter."""
        return y.new_zeros(y.shape[0], 3, y.shape[-2] * self.factor, y.shape[-1] * self.factor)

    def _pass(self, y, z, z_sample, y_rounding):
        """The model's forward on latents y (contiguous) and z (None: h_a runs), its roundings replaced."""
        y = y.contiguous()
        with Interception(self, y, z, z_sample, y_rounding) as seen:
            out = self.model(self._dummy_image(y))
        seen.x_hat, seen.likelihoods = out["x_hat"], list(out["likelihoods"].values())
        self._refuse_unseen(seen)
        return seen

    def _refuse_unseen(self, seen):
        name = type(self.model).__name__
        if not seen.bottleneck or not seen.gaussian:
            raise UnsupportedModel(f"{name}'s forward called {len(seen.bottleneck)} EntropyBottleneck(s) and "
                                   f"{len(seen.gaussian)} GaussianConditional(s): no entropy model call of y or z was "
                                   f"seen; register an adapter for it (docs/codecs.md)")
        if seen.unpaired:
            calls = len(seen.bottleneck) + len(seen.gaussian)
            raise UnsupportedModel(f"{name}'s forward rounds {seen.unpaired} value(s) straight-through that are no "
                                   f"entropy model's input minus its centre ({calls} entropy model calls seen): its "
                                   f"decoder's latents and its likelihoods' do not pair")
        if seen.hidden:
            raise UnsupportedModel(f"{name}'s forward calls torch.round {seen.hidden} time(s) outside the roundings "
                                   f"sgaplus replaces: if it is a straight-through function of the model's module, "
                                   f"name it (codec_for(model, straight_through=['its_name'])); else register an "
                                   f"adapter (docs/codecs.md)")

    def _y_hat(self, y, seen):
        """y's latents as the GaussianConditional calls rounded them (each call's input must be a view of y, and
        together they must cover it once)."""
        y = y.contiguous()
        flat, count = y.detach().new_zeros(y.numel()), torch.zeros(y.numel(), dtype=torch.long, device=y.device)
        positions = torch.arange(y.numel(), device=y.device)
        for call in seen.gaussian:
            value = call.value
            if value.untyped_storage().data_ptr() != y.untyped_storage().data_ptr():
                raise UnsupportedModel(f"{type(self.model).__name__}'s forward gives a GaussianConditional a tensor "
                                       f"that is not a part of y (computed from it, not sliced): register an adapter")
            where = positions.as_strided(value.shape, value.stride(), value.storage_offset() - y.storage_offset())
            flat[where.flatten()] = call.sample.detach().flatten()
            count.index_add_(0, where.flatten(), torch.ones_like(where.flatten()))
        if not torch.all(count == 1):
            raise UnsupportedModel(f"{type(self.model).__name__}'s GaussianConditional calls cover "
                                   f"{int((count > 0).sum())} of y's {y.numel()} values ({int((count > 1).sum())} "
                                   f"more than once): register an adapter")
        return flat.view_as(y)

    def _probe(self):
        """Shapes, strides and string count from a synthetic image; UnsupportedModel unless the model's forward is
        its encoder: the file its compress writes decodes to the hard forward's reconstruction, at about the
        forward's rate (a raster-scan context model's forward is no encoder)."""
        x = probe_image(PROBE_SIZE)
        with torch.no_grad():
            y = self.analysis(x)
            self.factor = PROBE_SIZE // y.shape[-1]
            z = self.hyper_analysis(y)
            self.z_stride = self.multiple = PROBE_SIZE // z.shape[-1]
            z_hat = round_around(z, self.z_offsets())
            y_hat, entropy, _, _ = self.encoder_y(y, z_hat)
            [strings] = self.compress(y_hat, z_hat)
            self.strings_per_image = len(strings)
            decoded = self.decompress(strings, z.shape[-2:])
            estimate = self.bits(y_hat, z_hat, entropy).item()
        gap = (decoded - entropy.x_hat.clamp(0, 1)).abs().max().item()
        bits = 8 * sum(map(len, strings))
        if gap > RECONSTRUCTION_TOLERANCE or abs(bits - estimate) > RATE_TOLERANCE * estimate + 64 * len(strings):
            raise UnsupportedModel(f"{type(self.model).__name__}'s forward is not its encoder: on a test image its "
                                   f"file ({bits} bits; forward's estimate {estimate:.0f}) decodes to an image up to "
                                   f"{gap:.3g} away from the hard forward's reconstruction (a raster-scan context "
                                   f"model?): register an adapter for it (docs/codecs.md)")


def probe_image(size):
    """(1, 3, size, size) in [0, 1]: smooth gradients and stripes, deterministic."""
    ramp = torch.linspace(0, 1, size)
    rows, cols = ramp[:, None], ramp[None, :]
    channels = [0.5 + 0.4 * torch.sin(12 * rows + 5 * cols), rows * cols, 0.5 + 0.3 * torch.cos(20 * cols) * rows]
    return torch.stack(channels).clamp(0, 1).unsqueeze(0)
