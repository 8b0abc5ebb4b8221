"""Small models written the way published learned codecs are (their own CompressionModel subclasses, not
CompressAI's classes), for the generic adapter's tests: a channel-conditional model with latent residual
prediction (Minnen & Singh 2020, as TCM and STF's WACNN build on it) whose straight-through rounding is
CompressAI's quantize_ste imported under another name; the same family with a straight-through function of this
module's own; a mean-scale hyperprior whose decoder takes the GaussianConditional's output (no straight-through
function); one that rounds the decoder's latents with torch.round in its forward; and models the adapter
must refuse."""
import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel, JointAutoregressiveHierarchicalPriors
from compressai.models.utils import conv, deconv
from compressai.ops import quantize_ste as rounded_straight_through  # CompressAI's, under another name


def ste_round(x):  # a module's own straight-through rounding, as published code often defines it
    return torch.round(x) - x.detach() + x


def analysis(n, m):
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


def synthesis(n, m):
    return nn.Sequential(deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True), deconv(n, n),
                         GDN(n, inverse=True), deconv(n, 3))


def hyper_synthesis(n, out):
    return nn.Sequential(deconv(n, n, 5, 2), nn.ReLU(), deconv(n, n, 5, 2), nn.ReLU(), conv(n, out, 3, 1))


def transform(cin, cout):
    return nn.Sequential(conv(cin, 32, 3, 1), nn.ReLU(), conv(32, cout, 3, 1))


class ChannelConditional(CompressionModel):
    """y in `slices` channel slices, each slice's mean and scale from the hyperprior and the earlier slices, and a
    latent residual prediction added to each decoded slice."""

    def __init__(self, N=16, M=32, slices=4):
        super().__init__()
        self.slices, self.step = slices, M // slices
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N, 5, 2), nn.ReLU(), conv(N, N, 5, 2))
        self.h_mean_s, self.h_scale_s = hyper_synthesis(N, M), hyper_synthesis(N, M)
        self.cc_mean = nn.ModuleList(transform(M + self.step * i, self.step) for i in range(slices))
        self.cc_scale = nn.ModuleList(transform(M + self.step * i, self.step) for i in range(slices))
        self.lrp = nn.ModuleList(transform(M + self.step * (i + 1), self.step) for i in range(slices))

    def round(self, value):
        return rounded_straight_through(value)

    def slice_parameters(self, i, means, scales, decoded):
        mu = self.cc_mean[i](torch.cat([means] + decoded, 1))
        return mu, self.cc_scale[i](torch.cat([scales] + decoded, 1))

    def with_residual(self, i, means, decoded, y_hat_slice):
        lrp = self.lrp[i](torch.cat([means] + decoded + [y_hat_slice], 1))
        return y_hat_slice + 0.5 * torch.tanh(lrp)

    def forward(self, x):
        return self.latents_forward(self.g_a(x))

    def latents_forward(self, y):
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_offset = self.entropy_bottleneck._get_medians()
        z_hat = self.round(z - z_offset) + z_offset
        means, scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
        decoded, likelihoods = [], []
        for i, y_slice in enumerate(y.chunk(self.slices, 1)):
            mu, scale = self.slice_parameters(i, means, scales, decoded)
            _, likelihood = self.gaussian_conditional(y_slice, scale, mu)
            likelihoods.append(likelihood)
            decoded.append(self.with_residual(i, means, decoded, self.round(y_slice - mu) + mu))
        x_hat = self.g_s(torch.cat(decoded, 1))
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(likelihoods, 1), "z": z_likelihoods}}

    def compress(self, x):
        return self.latents_compress(self.g_a(x))

    def latents_compress(self, y):
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        means, scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
        decoded, strings = [], []
        for i, y_slice in enumerate(y.chunk(self.slices, 1)):
            mu, scale = self.slice_parameters(i, means, scales, decoded)
            indexes = self.gaussian_conditional.build_indexes(scale)
            strings.append(self.gaussian_conditional.compress(y_slice, indexes, means=mu))
            y_hat_slice = self.gaussian_conditional.quantize(y_slice, "dequantize", mu)
            decoded.append(self.with_residual(i, means, decoded, y_hat_slice))
        return {"strings": strings + [z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings, shape):
        z_hat = self.entropy_bottleneck.decompress(strings[-1], shape)
        means, scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
        decoded = []
        for i in range(self.slices):
            mu, scale = self.slice_parameters(i, means, scales, decoded)
            indexes = self.gaussian_conditional.build_indexes(scale)
            y_hat_slice = self.gaussian_conditional.decompress(strings[i], indexes, means=mu)
            decoded.append(self.with_residual(i, means, decoded, y_hat_slice))
        return {"x_hat": self.g_s(torch.cat(decoded, 1)).clamp_(0, 1)}


class OwnStraightThrough(ChannelConditional):
    """The same family in two slices, rounding with this module's own ste_round."""

    def __init__(self, N=16, M=32):
        super().__init__(N, M, slices=2)

    def round(self, value):
        return ste_round(value)


class MeanScale(CompressionModel):
    """A mean-scale hyperprior whose decoder takes the GaussianConditional's returned y_hat."""

    def __init__(self, N=16, M=32):
        super().__init__()
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(), conv(N, N), nn.LeakyReLU(), conv(N, N))
        self.h_s = hyper_synthesis(N, 2 * M)

    def forward(self, x):
        y = self.g_a(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y))
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x):
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        scales, means = self.h_s(z_hat).chunk(2, 1)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return {"strings": [self.gaussian_conditional.compress(y, indexes, means=means), z_strings],
                "shape": z.size()[-2:]}

    def decompress(self, strings, shape):
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, means=means)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


class HiddenRounding(MeanScale):
    """Rounds the decoder's latents with torch.round directly, outside any entropy model or named function."""

    def forward(self, x):
        out = super().forward(x)
        y = self.g_a(x)
        z_hat, _ = self.entropy_bottleneck(self.h_a(y))
        scales, means = self.h_s(z_hat).chunk(2, 1)
        out["x_hat"] = self.g_s(torch.round(y - means) + means)
        return out


class DecoderUnlikeForward(MeanScale):
    """A forward whose reconstruction is not what its file decodes to (as a raster-scan context model's is not):
    its decoder sees y without the means."""

    def forward(self, x):
        out = super().forward(x)
        y = self.g_a(x)
        out["x_hat"] = self.g_s(y)
        return out


class RasterScan(JointAutoregressiveHierarchicalPriors):
    """A raster-scan context model (Minnen et al. 2018) as published reimplementations write its forward: the
    decoder's latents rounded straight-through around zero, the context over them in parallel; its compress and
    decompress (CompressAI's) code position by position. Its forward is not its encoder. (codec_for sends it to
    the context-model adapter, as a subclass of CompressAI's class; the tests force the generic adapter on it.)"""

    def __init__(self, N=16, M=32):
        super().__init__(N, M)

    def forward(self, x):
        y = self.g_a(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y))
        params = self.h_s(z_hat)
        y_hat = ste_round(y)
        gaussian_params = self.entropy_parameters(torch.cat((params, self.context_prediction(y_hat)), dim=1))
        scales_hat, means_hat = gaussian_params.chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales_hat, means=means_hat)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


class RateUnlikeForward(MeanScale):
    """A forward whose likelihoods are not its coder's (they count a tenth of the bits): its file costs more than
    the rate the refiner would optimize."""

    def forward(self, x):
        out = super().forward(x)
        out["likelihoods"] = {name: likelihood ** 0.1 for name, likelihood in out["likelihoods"].items()}
        return out
