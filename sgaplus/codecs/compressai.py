"""Adapter for CompressAI's hyperprior models: MeanScaleHyperprior (mbt2018-mean) and ScaleHyperprior
(bmshj2018-hyperprior)."""
import torch

from .base import HyperpriorCodec


class CompressAIHyperprior(HyperpriorCodec):
    """Wraps a CompressAI MeanScaleHyperprior or ScaleHyperprior (updated with model.update())."""

    def __init__(self, model, model_id, lmbda=None):
        from compressai.models import MeanScaleHyperprior, ScaleHyperprior
        if not isinstance(model, (MeanScaleHyperprior, ScaleHyperprior)):
            raise TypeError(f"expected a CompressAI MeanScaleHyperprior or ScaleHyperprior, got {type(model).__name__}")
        self.model = model.eval().requires_grad_(False)
        self.model_id = model_id
        self.lmbda = lmbda
        self.has_means = isinstance(model, MeanScaleHyperprior)

    def to(self, device):
        self.model.to(device)
        return self

    def analysis(self, x):
        return self.model.g_a(x)

    def hyper_analysis(self, y):
        return self.model.h_a(y)

    def z_offsets(self):
        return self.model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def hyper_synthesis(self, z_hat, y_shape):
        params = self.model.h_s(z_hat)[..., :y_shape[-2], :y_shape[-1]]
        if self.has_means:
            scales, means = params.chunk(2, 1)
            return scales, means
        return params, None

    def synthesis(self, y_hat):
        return self.model.g_s(y_hat)

    def bits(self, y_hat, z_hat, scales, means):
        eb, gc = self.model.entropy_bottleneck, self.model.gaussian_conditional
        # the entropy bottleneck scores channels first, as its forward does
        values = z_hat.transpose(0, 1).reshape(z_hat.shape[1], 1, -1)
        z_likelihood = eb._likelihood(values)[0]
        y_likelihood = gc._likelihood(y_hat, scales, means)
        if eb.use_likelihood_bound:
            z_likelihood = eb.likelihood_lower_bound(z_likelihood)
        if gc.use_likelihood_bound:
            y_likelihood = gc.likelihood_lower_bound(y_likelihood)
        z_bits = -torch.log2(z_likelihood).reshape(z_hat.shape[1], z_hat.shape[0], -1).sum(dim=(0, 2))
        return z_bits - torch.log2(y_likelihood).flatten(1).sum(dim=1)

    def compress(self, y_hat, z_hat):
        eb, gc = self.model.entropy_bottleneck, self.model.gaussian_conditional
        z_strings = eb.compress(z_hat)
        scales, means = self.hyper_synthesis(eb.decompress(z_strings, z_hat.shape[-2:]), y_hat.shape)
        y_strings = gc.compress(y_hat, gc.build_indexes(scales), means=means)
        return [[y, z] for y, z in zip(y_strings, z_strings)]

    def decompress(self, strings, z_size):
        return self.model.decompress([[strings[0]], [strings[1]]], z_size)["x_hat"]
