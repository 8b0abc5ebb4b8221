"""The generic adapter: any CompressAI-style CompressionModel refined through its own forward, compress and
decompress, with no adapter code (docs/codecs.md, "A model written as published codecs are").

A pass runs the model's forward with the latents being refined substituted (forward_pass.py) and every rounding
it performs replaced: relaxed, by one shared SGA+ sample per latent (shared_samples.py), which feeds the
likelihoods and the decoder however the model slices, masks or orders its roundings; hard, by the model's own
rounding. Before any work a synthetic image checks that the model's forward is its encoder (forward_probe.py).
"""
from dataclasses import dataclass

import torch

from .base import HyperpriorCodec, hard_rounding
from .forward_pass import Captured, Interception, Pass, UnsupportedModel, entropy_models
from .forward_probe import PROBE_SIZE, check_forward_is_encoder, probe_image
from .forward_slots import OpSlots, find_slots, substituted
from .model_calls import ADVICE, CALLED_AS, ModelCalls, call_refusal
from .shared_samples import SharedSamples

__all__ = ["ForwardCodec", "ModelCalls", "UnsupportedModel"]


@dataclass
class ForwardEntropy:
    """What `bits` and the refiner need of a pass: the reconstruction and the likelihoods forward returned."""
    x_hat: torch.Tensor
    likelihoods: list


def hyper_analysis_module(model):
    """(the module that owns h_a, h_a): the one submodule named h_a, at any depth; (None, None) if there is not one."""
    found = [name for name, module in model.named_modules() if name.rsplit(".", 1)[-1] == "h_a"]
    if len(found) != 1:
        return None, None
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
    """Any CompressionModel with one entropy model with medians for z and entropy models of any class for y (whole,
    or in parts that are views of y), refined through its own forward and coded by its own compress and decompress.
    y and z are substituted where the model produces them (forward_slots.py). Checked on a synthetic image before
    any work (UnsupportedModel otherwise). calls: how to call the model's forward, compress and decompress
    (ModelCalls; default: as CompressAI's models are called)."""

    def __init__(self, model, model_id, lmbda=None, calls=None):
        refusal = None if calls else next(filter(None, (call_refusal(model, method) for method in CALLED_AS)), None)
        if refusal:
            raise UnsupportedModel(f"{refusal}: {ADVICE}")
        self.model = model.eval().requires_grad_(False)
        self.model_id, self.lmbda = model_id, lmbda
        self.calls = calls or ModelCalls()
        self.h_a_owner, self.h_a = hyper_analysis_module(model)
        g_a = getattr(model, "g_a", None)
        self.slot_modules = {"g_a": g_a if isinstance(g_a, torch.nn.Module) else None, "h_a": self.h_a}
        self.bottleneck, self.y_coders = entropy_models(model)
        if self.bottleneck is None or not self.y_coders:
            missing = ("z (one submodule with compress, decompress and _get_medians, as an EntropyBottleneck)"
                       if self.bottleneck is None else "y (a submodule with compress and decompress)")
            raise UnsupportedModel(f"{type(model).__name__} has no entropy model for {missing}: register an adapter "
                                   f"for it (docs/codecs.md)")
        model.update()
        x = probe_image(PROBE_SIZE)
        self.forward_slots = find_slots(self, lambda: self.calls.forward(model, x), "forward")
        self.compress_slots = find_slots(self, lambda: self.calls.compress(model, x), "compress")
        self.inline_analysis = self.forward_slots.y_op is not None  # the analysis runs in every pass
        self.factor = 1  # the analysis' downsampling: set by the probe, which the dummy images need
        check_forward_is_encoder(self)

    def to(self, device):
        self.model.to(device)
        return self

    def analysis(self, x):
        """y: g_a's output, or the output of the operation of the forward that produces it (the forward stops there)."""
        if not self.inline_analysis:
            return self.model.g_a(x)

        def stop(output):
            raise Captured(output)
        try:
            with OpSlots({self.forward_slots.y_op: stop}):
                self.calls.forward(self.model, x)
        except Captured as captured:
            return captured.value.detach().clone()
        raise UnsupportedModel(f"{type(self.model).__name__}'s forward ran fewer operations than on the image it was "
                               f"probed on: register an adapter (docs/codecs.md)")

    def hyper_analysis(self, y):
        """z: what h_a makes of y in the model's forward (some models give it |y|, or y with other inputs)."""
        return self._pass(y, None, None).z

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
        seen = self._pass(y, z_hat, None if rounding is hard_rounding else SharedSamples(rounding))
        return self._y_hat(seen), ForwardEntropy(seen.x_hat, seen.likelihoods), None

    def encoder_y(self, y, z_hat, start=None, exact=False):
        with torch.no_grad():
            y_hat, entropy, _ = self.y_latents(y, z_hat, hard_rounding)
        return y_hat, entropy, None, 0

    def bits(self, y_hat, z_hat, entropy):
        return sum(-torch.log2(likelihood).flatten(1).sum(dim=1) for likelihood in entropy.likelihoods)

    def compress_image(self, y_hat, z_hat):
        out = self.compress_with(y_hat, z_hat, self._dummy_image(y_hat), self.calls.compress)
        if not (isinstance(out, dict) and "strings" in out and "shape" in out):
            raise UnsupportedModel(f"{type(self.model).__name__}'s compress returns {type(out).__name__}, not a dict "
                                   f"of 'strings' and 'shape' (does it write a file?): {ADVICE}")
        self.shape_ratios = shape_ratios(out["shape"], z_hat.shape[-2:])
        return [strings[0] for strings in out["strings"]]

    def compress_with(self, y_hat, z_hat, x, call):
        """What call(model, x), a call of the model's compress, returns with y_hat and z_hat as the latents it codes
        (x's own analysis replaced)."""
        with torch.no_grad(), substituted(self, y_hat.clone(), z_hat, Pass(), self.compress_slots):
            return call(self.model, x)

    def decompress(self, strings, z_size):
        shape = shape_of(self.shape_ratios, z_size)
        x_hat = self.calls.decompress(self.model, [[s] for s in strings], shape)["x_hat"]
        return x_hat.clamp(0, 1)  # an image, as the refiner measures it (some models' decompress does not clamp)

    # the passes ---------------------------------------------------------------------------------------------------
    def _dummy_image(self, y):
        """What forward and compress are given for x: only its shape can matter (g_a is replaced, or the analysis'
        output is)."""
        return y.new_zeros(y.shape[0], 3, y.shape[-2] * self.factor, y.shape[-1] * self.factor)

    def _pass(self, y, z, shared):
        """The model's forward on latents y and z (None: h_a runs), its roundings relaxed by shared (SharedSamples;
        None: hard, the model's own)."""
        y, blank = y.contiguous(), self._dummy_image(y)
        with Interception(self, y, z, shared) as seen, substituted(self, y, z, seen, self.forward_slots):
            out = self.calls.forward(self.model, blank)
        seen.x_hat, seen.likelihoods = out["x_hat"], list(out["likelihoods"].values())
        if not seen.bottleneck or not seen.gaussian:
            raise UnsupportedModel(f"{type(self.model).__name__}'s forward called z's entropy model {seen.bottleneck} "
                                   f"time(s) and y's {len(seen.gaussian)} time(s) (a call returning (values, "
                                   f"likelihoods)): register an adapter for it (docs/codecs.md)")
        return seen

    def _y_hat(self, seen):
        """y's latents as the calls of y's entropy models rounded them: each call's input must be a view of the tensor
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
                raise UnsupportedModel(f"{name}'s forward gives y's entropy model a tensor that is not a part of "
                                       f"its latents y (computed from them, not sliced; or, with no g_a module, not "
                                       f"sliced from what it hands h_a): give it a g_a module, or register an adapter")
            flat[where] = call.sample.detach().flatten().to(flat.dtype)
            count.index_add_(0, where, torch.ones_like(where))
        if not torch.all(count == 1):
            raise UnsupportedModel(f"{name}'s calls of y's entropy models cover {int((count > 0).sum())} of y's "
                                   f"{base.numel()} values ({int((count > 1).sum())} more than once): register an "
                                   f"adapter")
        return flat.view(base.shape)
