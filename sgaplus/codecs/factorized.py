"""Adapter for CompressAI's factorized prior (bmshj2018-factorized): one latent y with its own entropy
bottleneck, no z. y is rounded around the bottleneck's medians, as its compress does."""
from .base import HyperpriorCodec
from .compressai import bottleneck_bits, check_model


class CompressAIFactorized(HyperpriorCodec):
    """Wraps a CompressAI FactorizedPrior (updated with model.update())."""
    multiple = 16
    z_stride = 16  # the bitstream header's coded size is y's
    has_means = False
    has_z = False
    strings_per_image = 1

    def __init__(self, model, model_id, lmbda=None):
        from compressai.models import FactorizedPrior
        check_model(model, (FactorizedPrior,))
        self.model = model.eval().requires_grad_(False)
        self.model_id = model_id
        self.lmbda = lmbda

    def to(self, device):
        self.model.to(device)
        return self

    def analysis(self, x):
        return self.model.g_a(x)

    def hyper_analysis(self, y):
        return None

    def z_offsets(self):
        return None

    def hyper_synthesis(self, z_hat, y_shape):
        return None, self.model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def synthesis(self, y_hat):
        return self.model.g_s(y_hat)

    def bits(self, y_hat, z_hat, scales, means):
        return bottleneck_bits(self.model.entropy_bottleneck, y_hat)

    def compress(self, y_hat, z_hat):
        return [[string] for string in self.model.entropy_bottleneck.compress(y_hat)]

    def decompress(self, strings, z_size):
        return self.model.decompress([[strings[0]]], z_size)["x_hat"]
