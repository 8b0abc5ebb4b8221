"""Adapter for CompressAI's factorized prior (bmshj2018-factorized): one latent y with its own entropy
bottleneck, no z. y is rounded around the bottleneck's medians, as its compress does."""
from .compressai import CompressAIAdapter, bottleneck_bits


class CompressAIFactorized(CompressAIAdapter):
    """Wraps a CompressAI FactorizedPrior (or its ReLU variant)."""
    multiple = 16
    z_stride = 16  # the bitstream header's coded size is y's
    has_means = False
    has_z = False
    strings_per_image = 1

    @staticmethod
    def wraps():
        from compressai.models import FactorizedPrior
        return (FactorizedPrior,), ()

    def hyper_analysis(self, y):
        return None

    def z_offsets(self):
        return None

    def hyper_synthesis(self, z_hat, y_shape):
        return None, self.model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def bits(self, y_hat, z_hat, entropy):
        return bottleneck_bits(self.model.entropy_bottleneck, y_hat)

    def compress_image(self, y_hat, z_hat):
        return self.model.entropy_bottleneck.compress(y_hat)

    def decompress(self, strings, z_size):
        return self.model.decompress([[strings[0]]], z_size)["x_hat"]
