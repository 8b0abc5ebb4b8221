"""Adapters for CompressAI's variable-rate models (compressai.models.vbr: bmshj2018-hyperprior-vbr,
mbt2018-mean-vbr, mbt2018-vbr), refined at one rate: a level L of the model (gain = |Gain[L]|) or a gain between
its levels (CompressAI's `inputscale`).

Their quantizer, reproduced exactly (docs/refinement.md, "Variable-rate models"): with means m and scales s from
the hyperprior (and the context), the symbol is k = round((y - m) g) (the hyperpriors round y g - m g, as their
compress does), coded with scales s g; the decoder reconstructs y_hat = sign(k) (|k| + o) / g + m, where the
offset o = -QuantABCD(max(s g, bound), g) is learned (0 where k = 0). The relaxation rounds t = (y - m) g with the
op and maps it through the piecewise-linear interpolation of that reconstruction between integers,
sign(t) (|t| + o min(|t|, 1)) / g + m, exact at every integer. A model built with vr_entbttlnck codes z with a
step q(g): its z latent here is z / q, so z is rounded on the integer grid as every other codec's.
"""
import math

import torch

from .compressai import CompressAIHyperprior, bottleneck_bits, gaussian_bits
from .context import CompressAIContext

RATE_FIELDS = ("level", "gain")  # how a model id names the rate: ":level3" or ":gain0.25"


def rate_suffix(level, gain):
    """The model id suffix that names the rate a variable-rate codec codes at."""
    return f":level{level}" if level is not None else f":gain{gain!r}"


def split_rate(model_id):
    """(the model id without its rate suffix, level, gain): level and gain None when the id names no rate."""
    base, _, last = model_id.rpartition(":")
    for field in RATE_FIELDS:
        if base and last.startswith(field):
            value = last[len(field):]
            try:
                number = int(value) if field == "level" else float(value)
            except ValueError:
                return model_id, None, None
            return (base, number, None) if field == "level" else (base, None, number)
    return model_id, None, None


def nearest_level(model, lmbda):
    """The level of a variable-rate model whose training lambda is nearest to lmbda (in log)."""
    lambdas = list(model.lmbda)
    return min(range(len(lambdas)), key=lambda level: abs(math.log(lambdas[level] / lmbda)))


class VariableRate:
    """A variable-rate model's rate: level (an index of its gains) or gain (between its gains), checked; the
    training lambda there (a gain between levels: log-lambda interpolated linearly in log-gain)."""

    def __init__(self, model, level=None, gain=None):
        gains = model.Gain.detach().abs().tolist()
        if level is not None and gain is not None:
            raise ValueError("give the rate as a level or as a gain, not both")
        if gain is None:
            level = len(gains) // 2 if level is None else level
            if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(gains):
                raise ValueError(f"this variable-rate model has levels 0 to {len(gains) - 1}; got {level!r}")
            self.gain = model.Gain[level].detach().abs()
        else:
            if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not min(gains) <= gain <= max(gains):
                raise ValueError(f"the gain must lie within the model's gains, {min(gains):g} to {max(gains):g}; "
                                 f"got {gain!r}")
            self.gain = torch.tensor(float(gain))
        self.level, self.value = level, None if gain is None else float(gain)
        self.lmbda = self._lambda(gains, list(model.lmbda))

    def _lambda(self, gains, lambdas):
        if self.level is not None:
            return lambdas[self.level]
        points = sorted(zip(gains, lambdas))
        for (g0, l0), (g1, l1) in zip(points, points[1:]):
            if g0 <= self.value <= g1:
                share = 0.0 if g1 == g0 else (math.log(self.value) - math.log(g0)) / (math.log(g1) - math.log(g0))
                return math.exp(math.log(l0) + share * (math.log(l1) - math.log(l0)))
        return points[0][1]

    def suffix(self):
        return rate_suffix(self.level, self.value)

    def decoder_arguments(self):
        """The rate as the model's decompress takes it."""
        return {"stage": 2, "s": 0 if self.level is None else self.level,
                "inputscale": 0 if self.level is not None else self.gain}


class VariableRateQuantizer:
    """The reconstruction offsets and the (relaxed) reconstruction of a variable-rate model at one gain.
    model_for(tensor): the model on that tensor's device (a codec may code on a CPU copy)."""

    def __init__(self, model_for, gain):
        self.model_for, self.gain = model_for, gain

    def offsets(self, scales):
        """o = -QuantABCD(max(s g, bound), g) per position (0 without offsets)."""
        model, gain = self.model_for(scales), self.gain.to(scales.device)
        if model.no_quantoffset:
            return torch.zeros_like(scales)
        stdev = model.gaussian_conditional.lower_bound_scale(scales * gain).unsqueeze(-1)
        return -model.QuantABCD(torch.cat((stdev, gain.detach().expand(stdev.shape)), dim=-1)).squeeze(-1)

    def reconstruction(self, t, scales, means):
        """sign(t) (|t| + o min(|t|, 1)) / g + m: the decoder's reconstruction at integers t, linear between them."""
        rescale = torch.tensor(1.0, device=t.device) / self.gain.to(t.device)  # as the decoder computes it
        magnitude = t.abs()
        return torch.sign(t) * (magnitude + self.offsets(scales) * magnitude.clamp(max=1)) * rescale + means

    def recovered_symbols(self, y_hat, scales, means):
        """The symbols k of a reconstruction y_hat: the k whose reconstruction sign(k)(|k| + o) is nearest to
        t = (y_hat - m) g among 0, the positive k = round(t - o) and the negative k = round(t + o) (exact for any
        offsets that keep the reconstruction one-to-one)."""
        t = (y_hat - means) * self.gain.to(y_hat.device)
        offsets = self.offsets(scales)
        candidates = torch.stack((torch.zeros_like(t), torch.round(t - offsets).clamp(min=1),
                                  torch.round(t + offsets).clamp(max=-1)))
        reconstructed = torch.sign(candidates) * (candidates.abs() + offsets)
        return candidates.gather(0, (reconstructed - t).abs().argmin(dim=0, keepdim=True))[0]


class CompressAIVbr(CompressAIHyperprior):
    """Wraps a CompressAI ScaleHyperpriorVbr or MeanScaleHyperpriorVbr at one rate (level or gain)."""
    variable_rate = True

    @staticmethod
    def wraps():
        from compressai.models import JointAutoregressiveHierarchicalPriorsVbr, ScaleHyperpriorVbr
        return (ScaleHyperpriorVbr,), (JointAutoregressiveHierarchicalPriorsVbr,)

    def __init__(self, model, model_id, lmbda=None, level=None, gain=None):
        self.rate = VariableRate(model, level, gain)
        super().__init__(model, model_id + self.rate.suffix(), self.rate.lmbda if lmbda is None else lmbda)
        self.quantizer = VariableRateQuantizer(lambda tensor: self.model, self.rate.gain)
        self.z_step = None
        if model.vr_entbttlnck:  # z's coder tables and step depend on the rate
            with torch.no_grad():
                self.z_step = model.lower_bound_zqstep(model.gayn2zqstep(1.0 / self.rate.gain.view(1)))[0]
                model.update(force=True, scale=self.rate.gain)

    def to(self, device):
        super().to(device)
        self.rate.gain = self.quantizer.gain = self.rate.gain.to(device)
        self.z_step = None if self.z_step is None else self.z_step.to(device)
        return self

    def hyper_analysis(self, y):
        z = super().hyper_analysis(y)
        return z if self.z_step is None else z / self.z_step

    def z_offsets(self):
        offsets = super().z_offsets()
        return offsets if self.z_step is None else offsets / self.z_step

    def z_values(self, z_hat):
        """z as the model's h_s takes it: z_hat / q scaled back; a hard z_hat exactly as the decoder dequantizes it."""
        if self.z_step is None:
            return z_hat
        medians = self.model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        steps = z_hat - medians / self.z_step
        return (steps if torch.is_grad_enabled() else torch.round(steps)) * self.z_step + medians

    def hyper_synthesis(self, z_hat, y_shape):
        return super().hyper_synthesis(self.z_values(z_hat), y_shape)

    def symbol_values(self, y, means):
        """What the coder rounds: y g - m g (as compress computes it), y g without means."""
        return y * self.rate.gain if means is None else y * self.rate.gain - means * self.rate.gain

    def y_latents(self, y, z_hat, rounding, centres=None):
        scales, means = self.hyper_synthesis(z_hat, y.shape)
        t = rounding(self.symbol_values(y, means), None)
        y_hat = self.quantizer.reconstruction(t, scales, 0 if means is None else means)
        return y_hat, (t, scales * self.rate.gain), None

    def z_bits(self, z_hat):
        bottleneck = self.model.entropy_bottleneck
        if self.z_step is None:
            return bottleneck_bits(bottleneck, z_hat)
        z = self.z_values(z_hat)
        values = z.transpose(0, 1).reshape(z.shape[1], 1, -1)
        likelihood = bottleneck._likelihood_variable(values, qs=self.z_step)[0]
        if bottleneck.use_likelihood_bound:
            likelihood = bottleneck.likelihood_lower_bound(likelihood)
        return -torch.log2(likelihood).reshape(z.shape[1], z.shape[0], -1).sum(dim=(0, 2))

    def bits(self, y_hat, z_hat, entropy):
        symbols, scales = entropy
        return self.z_bits(z_hat) + gaussian_bits(self.model.gaussian_conditional, symbols, scales, None)

    def compress_image(self, y_hat, z_hat):
        """z_hat by the entropy bottleneck (with its step), y's symbols (recovered from y_hat) with the scales'
        indexes at the gain: the strings the model's compress writes at this rate."""
        eb, gc = self.model.entropy_bottleneck, self.model.gaussian_conditional
        step = {} if self.z_step is None else {"qs": self.z_step}
        with torch.no_grad():
            z_strings = eb.compress(self.z_values(z_hat), **step)
            z_decoded = eb.decompress(z_strings, z_hat.shape[-2:], **step)
            scales, means = CompressAIHyperprior.hyper_synthesis(self, z_decoded, y_hat.shape)
            symbols = self.quantizer.recovered_symbols(y_hat, scales, 0 if means is None else means)
            [y_string] = gc.compress(symbols, gc.build_indexes(scales * self.rate.gain))
        return [y_string, *z_strings]

    def decompress(self, strings, z_size):
        return self.model.decompress([[strings[0]], [strings[1]]], z_size, **self.rate.decoder_arguments())["x_hat"]


class CompressAIVbrContext(CompressAIContext):
    """Wraps a CompressAI JointAutoregressiveHierarchicalPriorsVbr (mbt2018-vbr) at one rate: the context model of
    context.py with the variable-rate quantizer; its rounding centres hold the previous iterate's means and scales
    (the reconstruction offsets depend on the scales)."""
    variable_rate = True

    @staticmethod
    def wraps():
        from compressai.models import JointAutoregressiveHierarchicalPriorsVbr
        return (JointAutoregressiveHierarchicalPriorsVbr,), ()

    def __init__(self, model, model_id, lmbda=None, level=None, gain=None):
        self.rate = VariableRate(model, level, gain)
        super().__init__(model, model_id + self.rate.suffix(), self.rate.lmbda if lmbda is None else lmbda)
        self.quantizer = VariableRateQuantizer(self.model_for, self.rate.gain)

    def model_for(self, tensor):
        """The model on tensor's device: the codec's, or its CPU copy (which compress and decompress use)."""
        return self.model if tensor.device == next(self.model.parameters()).device else self._cpu()

    def to(self, device):
        super().to(device)
        self.rate.gain = self.quantizer.gain = self.rate.gain.to(device)
        return self

    def context_shift(self, context, model):
        if not model.scl2ctx:
            return context
        return context + model.scale_to_context(self.rate.gain.to(context.device).view(1, 1)).view(1, -1, 1, 1)

    def symbols(self, y, scales, means):
        """k = sign(v) round(|v|), v = (y - m) g, as the model's compress rounds; and the decoder's y_hat."""
        v = (y - means) * self.rate.gain
        symbols = torch.sign(v) * torch.round(v.abs())
        return symbols, self.reconstruction(symbols, scales, means)

    def recovered_symbols(self, y_hat, scales, means):
        return self.quantizer.recovered_symbols(y_hat, scales, means)

    def reconstruction(self, symbols, scales, means):
        return self.quantizer.reconstruction(symbols, scales, means)

    def indexes(self, gaussian_conditional, scales):
        return gaussian_conditional.build_indexes(scales * self.rate.gain)

    def y_latents(self, y, z_hat, rounding, centres=None):
        """Relaxed around the previous iterate's means and scales (centres: their concatenation along channels):
        t = rounding((y - m') g) is reconstructed with the offsets of s'; the rate is that of t moved to the new
        means, t + (m' - m) g (t itself once they agree)."""
        hyper = self.hyper_synthesis(z_hat, y.shape)
        if centres is None:
            centres = torch.cat(self.gaussian_parameters(hyper, y.detach())[::-1], dim=1)
        centre_means, centre_scales = centres.chunk(2, 1)
        t = rounding((y - centre_means) * self.rate.gain, None)
        y_hat = self.reconstruction(t, centre_scales, centre_means)
        scales, means = self.gaussian_parameters(hyper, y_hat)
        symbols = t + (centre_means - means) * self.rate.gain
        return y_hat, (symbols, scales * self.rate.gain), torch.cat((means, scales), dim=1).detach()

    def entropy_of(self, hyper, y_hat):
        """The symbols of a hard y_hat priced at the scales times the gain; the centres hold means and scales."""
        scales, means = self.gaussian_parameters(hyper, y_hat)
        symbols = self.recovered_symbols(y_hat, scales, means)
        return (symbols, scales * self.rate.gain), torch.cat((means, scales), dim=1)

    def bits(self, y_hat, z_hat, entropy):
        symbols, scales = entropy
        return bottleneck_bits(self.model.entropy_bottleneck, z_hat) + \
            gaussian_bits(self.model.gaussian_conditional, symbols, scales, None)

    def decompress(self, strings, z_size):
        return self._cpu().decompress([[strings[0]], [strings[1]]], z_size, **self.rate.decoder_arguments())["x_hat"]
