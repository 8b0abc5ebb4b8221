"""Small models written in idioms of published codecs' code that the generic adapter once refused or broke on
(docs/codecs.md, "A model written as published codecs are"): a forward and decompress that do not clamp (ELIC's
open reimplementation, MLIC++); a Cheng2020Anchor subclass whose analysis and synthesis are methods, an invertible
transform run forwards and backwards (after Xie et al. 2021's invertible encoding); a straight-through rounding
written as a method of a helper object with a mode switch; and an entropy model of the model's own class (a
location-scale Gaussian, its own likelihood bound) with a compress that writes a file and a decompress that reads
it; a spatially adaptive variable-rate codec (after Song et al. 2021) whose forward takes a quality map, whose analysis
and hyper-analysis are methods (no g_a, no h_a module), and whose entropy models are its own copies of CompressAI's.
Written from the papers' descriptions, tiny."""
import math
import struct
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.entropy_models.entropy_models import EntropyModel
from compressai.models import Cheng2020Anchor, CompressionModel
from compressai.models.utils import conv
from published_models import MeanScale, analysis, hyper_synthesis, synthesis

from sgaplus.codecs.forward import ModelCalls

SPACE_TO_DEPTH = 16  # the invertible analysis' downsampling, y's stride in Cheng2020Anchor
LATENT_GAIN = 8.0  # the invertible analysis scales what it keeps (and its synthesis divides)


class Unclamped(MeanScale):
    """A mean-scale hyperprior whose forward and decompress both return the synthesis' output unclamped, its
    reconstruction partly outside [0, 1] (a gain around mid-grey, as trained weights overshoot)."""

    def forward(self, x):
        out = super().forward(x)
        return {**out, "x_hat": 0.5 + 1.5 * (out["x_hat"] - 0.5)}

    def decompress(self, strings, shape):
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat = self.gaussian_conditional.decompress(strings[0], self.gaussian_conditional.build_indexes(scales),
                                                     means=means)
        return {"x_hat": 0.5 + 1.5 * (self.g_s(y_hat) - 0.5)}


class InvertibleAnchor(Cheng2020Anchor):
    """Cheng2020Anchor's raster-scan context model with g_a = g_s = None: `analyse` is a space-to-depth by 16 and
    additive couplings, keeping N channels; `synthesise` runs the couplings backwards on y_hat padded with zeros,
    then depth-to-space: one set of weights both ways."""

    def __init__(self, N=16):
        super().__init__(N)
        self.g_a = self.g_s = None
        half = 3 * SPACE_TO_DEPTH ** 2 // 2
        self.couplings = nn.ModuleList(nn.Conv2d(half, half, 1) for _ in range(2))

    def analyse(self, x):
        h = F.pixel_unshuffle(x - 0.5, SPACE_TO_DEPTH)
        for coupling in self.couplings:
            a, b = h.chunk(2, 1)
            h = torch.cat([b, a + coupling(b)], 1)
        return LATENT_GAIN * h[:, :self.N]

    def synthesise(self, y_hat):
        rest = y_hat.new_zeros(y_hat.shape[0], 3 * SPACE_TO_DEPTH ** 2 - self.N, *y_hat.shape[2:])
        h = torch.cat([y_hat / LATENT_GAIN, rest], 1)
        for coupling in reversed(self.couplings):
            b, moved = h.chunk(2, 1)
            h = torch.cat([moved - coupling(b), b], 1)
        return F.pixel_shuffle(h, SPACE_TO_DEPTH) + 0.5

    def forward(self, x):
        y = self.analyse(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y))
        y_hat = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
        parameters = torch.cat((self.h_s(z_hat), self.context_prediction(y_hat)), dim=1)
        scales, means = self.entropy_parameters(parameters).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.synthesise(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x):
        y = self.analyse(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        params = self.h_s(self.entropy_bottleneck.decompress(z_strings, z.size()[-2:]))
        padded = F.pad(y, (2, 2, 2, 2))
        y_strings = [self._compress_ar(padded[i:i + 1], params[i:i + 1], *y.shape[-2:], 5, 2)
                     for i in range(y.shape[0])]
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings, shape):
        params = self.h_s(self.entropy_bottleneck.decompress(strings[1], shape))
        height, width = 4 * params.shape[-2] // 4, 4 * params.shape[-1] // 4
        y_hat = params.new_zeros(params.shape[0], self.M, height + 4, width + 4)
        for i, string in enumerate(strings[0]):
            self._decompress_ar(string, y_hat[i:i + 1], params[i:i + 1], height, width, 5, 2)
        return {"x_hat": self.synthesise(y_hat[..., 2:-2, 2:-2]).clamp_(0, 1)}


class Quantizer:
    """A helper object (no module) that rounds: straight-through, with uniform noise, or plainly."""

    def quantize(self, value, mode):
        if mode == "noise":
            return value + torch.empty_like(value).uniform_(-0.5, 0.5)
        if mode == "ste":
            return (torch.round(value) - value).detach() + value
        return torch.round(value)


class HelperStraightThrough(MeanScale):
    """A mean-scale hyperprior whose decoder's latents (y and z) are rounded straight-through by a helper object's
    method; compress rounds with its "dequantize" mode."""

    def __init__(self, N=16, M=32):
        super().__init__(N, M)
        self.quantizer = Quantizer()

    def forward(self, x):
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_offset = self.entropy_bottleneck._get_medians()
        z_hat = self.quantizer.quantize(z - z_offset, "ste") + z_offset
        scales, means = self.h_s(z_hat).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        y_hat = self.quantizer.quantize(y - means, "ste") + means
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


class LocationScaleGaussian(EntropyModel):
    """A Gaussian of a location and a scale per symbol, coded with CompressAI's rANS tables over a table of scales,
    but not CompressAI's GaussianConditional: its own quantization, likelihood and bound (a clamp)."""

    def __init__(self, smallest=0.11, largest=64.0, levels=32, bound=1e-9):
        super().__init__(likelihood_bound=0)  # its own bound, below
        self.register_buffer("scale_table", torch.logspace(math.log10(smallest), math.log10(largest), levels))
        self.bound = bound

    @staticmethod
    def normal_cdf(value):
        return 0.5 * torch.erfc(-value / math.sqrt(2))

    def likelihood(self, values, scales, locations):
        scales = scales.clamp_min(self.scale_table[0])
        distance = (values - locations).abs()
        mass = self.normal_cdf((0.5 - distance) / scales) - self.normal_cdf((-0.5 - distance) / scales)
        return mass.clamp_min(self.bound)

    def forward(self, values, scales, locations):
        hat = torch.round(values - locations) + locations
        return hat, self.likelihood(hat, scales, locations)

    def build_indexes(self, scales):
        return (scales.clamp_min(self.scale_table[0])[..., None] > self.scale_table).sum(-1).clamp(
            max=len(self.scale_table) - 1).int()

    def update(self):
        centres = torch.ceil(self.scale_table * 6.2).int()  # 6.2 standard deviations: a tail mass below 1e-9
        lengths = 2 * centres + 1
        samples = (torch.arange(int(lengths.max())).int() - centres[:, None]).abs().float()
        upper = self.normal_cdf((0.5 - samples) / self.scale_table[:, None])
        lower = self.normal_cdf((-0.5 - samples) / self.scale_table[:, None])
        pmf = upper - lower
        tails = 2 * lower[:, :1]
        self._quantized_cdf = self._pmf_to_cdf(pmf, tails, lengths, int(lengths.max()))
        self._offset, self._cdf_length = -centres, lengths + 2


class OwnEntropyModel(CompressionModel):
    """A mean-scale hyperprior whose y is coded by LocationScaleGaussian; compress(x, path) writes one file (z's
    size, then the two strings with their lengths), decompress(path) reads it."""

    def __init__(self, N=16, M=32):
        super().__init__()
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian = LocationScaleGaussian()
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        self.h_a = nn.Sequential(nn.Conv2d(M, N, 3, padding=1), nn.LeakyReLU(), nn.Conv2d(N, N, 5, 2, 2),
                                 nn.LeakyReLU(), nn.Conv2d(N, N, 5, 2, 2))
        self.h_s = hyper_synthesis(N, 2 * M)

    def update(self, scale_table=None, force=False):
        self.gaussian.update()
        return super().update(force=force)

    def forward(self, x):
        y = self.g_a(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y))
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_likelihoods = self.gaussian(y, scales, means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x, path):
        y = self.g_a(x)
        z = self.h_a(y)
        [z_string] = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress([z_string], z.shape[-2:])
        scales, means = self.h_s(z_hat).chunk(2, 1)
        [y_string] = self.gaussian.compress(y, self.gaussian.build_indexes(scales), means)
        header = struct.pack(">HHII", *z.shape[-2:], len(y_string), len(z_string))
        Path(path).write_bytes(header + y_string + z_string)

    def decompress(self, path):
        data = Path(path).read_bytes()
        height, width, y_length, _ = struct.unpack(">HHII", data[:12])
        y_string, z_string = data[12:12 + y_length], data[12 + y_length:]
        z_hat = self.entropy_bottleneck.decompress([z_string], (height, width))
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat = self.gaussian.decompress([y_string], self.gaussian.build_indexes(scales), means=means)
        return {"x_hat": self.g_s(y_hat).clamp(0, 1)}


def file_compress(model, x):
    """OwnEntropyModel's compress, its file read back as its one string."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.bin"
        model.compress(x, path)
        return {"strings": [[path.read_bytes()]], "shape": []}


def file_decompress(model, strings, shape):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.bin"
        path.write_bytes(strings[0][0])
        return model.decompress(path)


FILE_CALLS = ModelCalls(compress=file_compress, decompress=file_decompress)  # how OwnEntropyModel is called


class MapBottleneck(EntropyBottleneck):
    """The quality-map codec's own copy of CompressAI's entropy bottleneck."""


class MapConditional(GaussianConditional):
    """The quality-map codec's own copy of CompressAI's Gaussian conditional."""


class QualityMapCodec(CompressionModel):
    """A mean-scale hyperprior whose analysis features are scaled and shifted by maps computed from a quality map
    (one value per pixel, in [0, 1]): forward(x, qmap), compress(x, qmap). `analyse` and `hyper_analyse` are
    methods over module lists: no g_a or h_a module."""

    def __init__(self, N=16, M=32):
        super().__init__()
        self.entropy_bottleneck, self.gaussian_conditional = MapBottleneck(N), MapConditional(None)
        self.analysis_layers = nn.ModuleList([conv(3, N), conv(N, N), conv(N, N), conv(N, M)])
        self.modulations = nn.ModuleList(nn.Conv2d(1, 2 * N, 1) for _ in range(3))
        self.hyper_layers = nn.ModuleList([conv(M, N, 3, 1), conv(N, N), conv(N, N)])
        self.h_s, self.g_s = hyper_synthesis(N, 2 * M), synthesis(N, M)

    def analyse(self, x, qmap):
        h = x
        for layer, modulation in zip(self.analysis_layers, self.modulations):
            h = layer(h)
            scale, shift = modulation(F.interpolate(qmap, size=h.shape[-2:])).chunk(2, 1)
            h = F.gelu(h * (1 + scale) + shift)
        return self.analysis_layers[-1](h)

    def hyper_analyse(self, y):
        return self.hyper_layers[2](F.leaky_relu(self.hyper_layers[1](F.leaky_relu(self.hyper_layers[0](y)))))

    def forward(self, x, qmap):
        y = self.analyse(x, qmap)
        z_hat, z_likelihoods = self.entropy_bottleneck(self.hyper_analyse(y))
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x, qmap):
        y = self.analyse(x, qmap)
        z = self.hyper_analyse(y)
        z_strings = self.entropy_bottleneck.compress(z)
        scales, means = self.h_s(self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])).chunk(2, 1)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return {"strings": [self.gaussian_conditional.compress(y, indexes, means=means), z_strings],
                "shape": z.size()[-2:]}

    def decompress(self, strings, shape):
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, means=means)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


def constant_map(x, quality=0.5):
    return torch.full_like(x[:, :1], quality)


MAP_CALLS = ModelCalls(forward=lambda model, x: model(x, constant_map(x)),
                       compress=lambda model, x: model.compress(x, constant_map(x)))  # QualityMapCodec at one quality
