"""The generic adapter: any CompressAI-style CompressionModel refined through its own forward, compress and
decompress, with no adapter code (docs/codecs.md, "A model written as published codecs are").

A pass runs the model's forward with the latents being refined substituted (forward_pass.py) and every rounding
it performs replaced: relaxed, by one shared SGA+ sample per latent (shared_samples.py), which feeds the
likelihoods and the decoder however the model slices, masks or orders its roundings; hard, by the model's own
rounding. Before any work a synthetic image checks that the model's forward is its encoder (forward_probe.py).
"""
from dataclasses import dataclass

import torch

from .base import HyperpriorCodec, hard_rounding, round_around
from .forward_pass import Capture, Captured, Interception, Pass, UnsupportedModel, entropy_models, substituted, swapped
from .forward_probe import check_forward_is_encoder

__all__ = ["ForwardCodec", "UnsupportedModel"]

STRAIGHT_THROUGH_NAMES = ("ste_round", "quantize_ste")  # module-level names of straight-through rounding


@dataclass
class ForwardEntropy:
    """What `bits` and the refiner need of a pass: the reconstruction and the likelihoods forward returned."""
    x_hat: torch.Tensor
    likelihoods: list


def hyper_analysis_module(model):
    """(the module that owns h_a, h_a): the one submodule named h_a, at any depth."""
    found = [name for name, module in model.named_modules() if name.rsplit(".", 1)[-1] == "h_a"]
    if len(found) != 1:
        raise UnsupportedModel(f"{type(model).__name__} has {len(found) or 'no'} h_a module{'s' * (len(found) > 1)}"
                               f"{': ' + ', '.join(found) if found else ''}: the generic adapter substitutes z as "
                               f"the output of the one module named h_a (name the hyper-analysis so), or register "
                               f"an adapter (docs/codecs.md)")
    owner = model.get_submodule(found[0].rpartition(".")[0])
    return owner, getattr(owner, "h_a")


def shape_ratios(shape, z_size):
    """The shape compress returned (z's size, or dicts and lists of shapes as CompressAI's latent codecs give),
    each shape as (its leading sides, its last two sides as ratios to z's): decompress gets back what compress
    gave from the z size a bitstream holds."""
    if isinstance(shape, dict):
        return {key: shape_ratios(value, z_size) for key, value in shape.items()}
    if all(isinstance(side, int) for side in shape):
        return list(shape[:-2]), [side / z_side for side, z_side in zip(shape[-2:], z_size)]
    return [shape_ratios(part, z_size) for part in shape]


def shape_of(ratios, z_size):
    if isinstance(ratios, dict):
        return {key: shape_of(value, z_size) for key, value in ratios.items()}
    if isinstance(ratios, tuple):
        lead, sides = ratios
        return lead + [round(ratio * z_side) for ratio, z_side in zip(sides, z_size)]
    return [shape_of(part, z_size) for part in ratios]


class ForwardCodec(HyperpriorCodec):
    """Any CompressionModel with one EntropyBottleneck (z) and GaussianConditionals (y, whole or in parts that are
    views of y), refined through its own forward and coded by its own compress and decompress. y is g_a's output,
    or, for a model whose analysis is inline in its forward, what the forward hands to h_a. Checked on a synthetic
    image before any work (UnsupportedModel otherwise). straight_through: more module-level names of the model's
    straight-through rounding function (ste_round and quantize_ste are known)."""

    def __init__(self, model, model_id, lmbda=None, straight_through=()):
        self.model = model.eval().requires_grad_(False)
        self.model_id, self.lmbda = model_id, lmbda
        self.names = STRAIGHT_THROUGH_NAMES + tuple(straight_through)
        self.h_a_owner, self.h_a = hyper_analysis_module(model)
        self.inline_analysis = not isinstance(getattr(model, "g_a", None), torch.nn.Module)
        bottlenecks, conditionals = entropy_models(model)
        if len(bottlenecks) != 1 or not conditionals:
            raise UnsupportedModel(f"{type(model).__name__} has {len(bottlenecks)} EntropyBottleneck(s) and "
                                   f"{len(conditionals)} GaussianConditional(s); the generic adapter refines models "
                                   f"with one of the first (z) and at least one of the second (y): register an "
                                   f"adapter for it (docs/codecs.md)")
        self.bottleneck = bottlenecks[0]
        model.update()
        self.factor = 1  # the analysis' downsampling: set by the probe, which the dummy images need
        check_forward_is_encoder(self)

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
        """y: g_a's output, or what the model's forward hands to h_a (the forward stops there)."""
        if not self.inline_analysis:
            return self.model.g_a(x)
        try:
            with swapped(self.h_a_owner, "h_a", Capture()):
                self.model(x)
        except Captured as captured:
            return captured.value.detach().clone()
        raise UnsupportedModel(f"{type(self.model).__name__}'s forward never called h_a: give it a g_a module or "
                               f"register an adapter (docs/codecs.md)")

    def hyper_analysis(self, y):
        """z: what h_a makes of y in the model's forward (some models give it |y|, or y with other inputs)."""
        return self._pass(y, None, round_around, hard_rounding).z

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
        return self._y_hat(seen), ForwardEntropy(seen.x_hat, seen.likelihoods), None

    def encoder_y(self, y, z_hat, start=None, exact=False):
        with torch.no_grad():
            y_hat, entropy, _ = self.y_latents(y, z_hat, hard_rounding)
        return y_hat, entropy, None, 0

    def bits(self, y_hat, z_hat, entropy):
        return sum(-torch.log2(likelihood).flatten(1).sum(dim=1) for likelihood in entropy.likelihoods)

    def compress_image(self, y_hat, z_hat):
        with torch.no_grad(), substituted(self, y_hat.clone(), z_hat, Pass()):
            out = self.model.compress(self._dummy_image(y_hat))
        self.shape_ratios = shape_ratios(out["shape"], z_hat.shape[-2:])
        return [strings[0] for strings in out["strings"]]

    def decompress(self, strings, z_size):
        return self.model.decompress([[s] for s in strings], shape_of(self.shape_ratios, z_size))["x_hat"]

    # the passes ---------------------------------------------------------------------------------------------------
    def _dummy_image(self, y):
        """What forward and compress are given for x: only its shape can matter (g_a is replaced, or an inline
        analysis' output is overwritten)."""
        return y.new_zeros(y.shape[0], 3, y.shape[-2] * self.factor, y.shape[-1] * self.factor)

    def _pass(self, y, z, z_rounding, y_rounding):
        """The model's forward on latents y and z (None: h_a runs), its roundings replaced."""
        y = y.contiguous()
        with Interception(self, y, z, z_rounding, y_rounding) as seen:
            out = self.model(self._dummy_image(y))
        seen.x_hat, seen.likelihoods = out["x_hat"], list(out["likelihoods"].values())
        self._refuse_unseen(seen)
        return seen

    def _refuse_unseen(self, seen):
        name = type(self.model).__name__
        if not seen.bottleneck or not seen.gaussian:
            raise UnsupportedModel(f"{name}'s forward called {seen.bottleneck} EntropyBottleneck(s) and "
                                   f"{len(seen.gaussian)} GaussianConditional(s): no entropy model call of y or z was "
                                   f"seen; register an adapter for it (docs/codecs.md)")
        if seen.hidden:
            raise UnsupportedModel(f"{name}'s forward calls torch.round {seen.hidden} time(s) outside the roundings "
                                   f"sgaplus replaces: if it is a straight-through function of the model's module, "
                                   f"name it (codec_for(model, straight_through=['its_name'])); else register an "
                                   f"adapter (docs/codecs.md)")

    def _y_hat(self, seen):
        """y's latents as the GaussianConditional calls rounded them: each call's input must be a view of the tensor
        holding the latents (g_a's output, or what an inline analysis handed to h_a), together covering it once."""
        name, base = type(self.model).__name__, seen.y
        storage = base.untyped_storage()
        index = torch.full((storage.nbytes() // base.element_size(),), -1, dtype=torch.long, device=base.device)
        index.as_strided(base.shape, base.stride(), base.storage_offset()).copy_(
            torch.arange(base.numel(), device=base.device).view(base.shape))
        flat = base.detach().new_zeros(base.numel())
        count = torch.zeros(base.numel(), dtype=torch.long, device=base.device)
        for call in seen.gaussian:
            value = call.value
            where = None
            if value.untyped_storage().data_ptr() == storage.data_ptr() and value.dtype == base.dtype:
                where = index.as_strided(value.shape, value.stride(), value.storage_offset()).flatten()
            if where is None or bool((where < 0).any()):
                raise UnsupportedModel(f"{name}'s forward gives a GaussianConditional a tensor that is not a part of "
                                       f"its latents y (computed from them, not sliced; or, with no g_a module, not "
                                       f"sliced from what it hands h_a): give it a g_a module, or register an adapter")
            flat[where] = call.sample.detach().flatten().to(flat.dtype)
            count.index_add_(0, where, torch.ones_like(where))
        if not torch.all(count == 1):
            raise UnsupportedModel(f"{name}'s GaussianConditional calls cover {int((count > 0).sum())} of y's "
                                   f"{base.numel()} values ({int((count > 1).sum())} more than once): register an "
                                   f"adapter")
        return flat.view(base.shape)
