"""Adapter for any CompressAI model composed of latent codecs (a SimpleVAECompressionModel: g_a, g_s and a tree of
compressai.latent_codecs), found by walking the tree by codec type (tree.py): ELIC (elic2022-official,
elic2022-chandelier), the checkerboard model (cheng2020-anchor-checkerboard) and a user's own composition.

At the root, a HyperpriorLatentCodec (a HyperLatentCodec codes z with an entropy bottleneck, h_s(z_hat) are the
side parameters of y's codec), or y's codec alone (no z; an EntropyBottleneckLatentCodec). Files are written by
CompressAI's own codecs: z_hat by the hyper codec's entropy bottleneck, y_hat by y's codec's `compress` with
h_s(z_hat) (HyperpriorLatentCodec.compress would recompute z from y), read by the model's unchanged `decompress`.
"""
import torch

from .base import hard_rounding
from .compressai import CompressAIAdapter, bottleneck_bits
from .tree import mask_context_weights, node_for, nodes_of

PROBE = 256  # side of the blank image the strides of g_a and h_a are measured on


class CompressAILatentCodecs(CompressAIAdapter):
    """Wraps a CompressAI SimpleVAECompressionModel (updated with model.update()) whose y is coded by latent codecs
    sgaplus can walk. context_model is True when the tree holds a raster-scan context."""

    @staticmethod
    def wraps():
        from compressai.models.base import SimpleVAECompressionModel
        return (SimpleVAECompressionModel,), ()

    def __init__(self, model, model_id, lmbda=None):
        super().__init__(model, model_id, lmbda)
        from compressai.latent_codecs import HyperLatentCodec, HyperpriorLatentCodec
        root = model.latent_codec
        self.hyper = None
        if isinstance(root, HyperpriorLatentCodec):
            if not isinstance(root.hyper, HyperLatentCodec):
                raise TypeError(f"expected a HyperLatentCodec for z, got {type(root.hyper).__name__}")
            self.hyper, root = root.hyper, root.y
        self.y_codec = root
        self.node = node_for(root)
        if self.hyper is None and not hasattr(self.node, "medians"):
            raise TypeError(f"without a hyperprior, y must be coded by an EntropyBottleneckLatentCodec, "
                            f"got {type(root).__name__}")
        mask_context_weights(model)
        self.has_z = self.hyper is not None
        self.has_means = True
        self.context_model = self.node.needs_centres
        self.strings_per_image = self.node.strings + self.has_z
        self.multiple, self.z_stride = self._strides()

    def _strides(self):
        """(the multiple images are padded to, pixels per position of the coded size) from a blank probe; also y's
        channels and stride."""
        with torch.no_grad():
            y = self.model.g_a(torch.zeros(1, 3, PROBE, PROBE, device=next(self.model.parameters()).device))
            self.y_channels, self.y_stride = y.shape[1], PROBE // y.shape[-1]
            if self.hyper is None:
                return self.y_stride * 2, self.y_stride  # an even y, for a checkerboard
            z = self.hyper.h_a(y)
            return self.y_stride * y.shape[-1] // z.shape[-1], PROBE // z.shape[-1]

    def hyper_analysis(self, y):
        return None if self.hyper is None else self.hyper.h_a(y)

    def z_offsets(self):
        if self.hyper is None:
            return None
        return self.hyper.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def hyper_synthesis(self, z_hat, y_shape):
        """The side parameters of y's codec, h_s(z_hat) cropped to y's size (None without z)."""
        return None if z_hat is None else self.hyper.h_s(z_hat)[..., :y_shape[-2], :y_shape[-1]]

    def y_latents(self, y, z_hat, rounding, centres=None):
        """y relaxed pass by pass as its codecs decode it (tree.py); centres: a raster-scan context's rounding
        centres (the previous iterate's means), unused otherwise."""
        y_hat, scales, means = self.node.run(y, self.hyper_synthesis(z_hat, y.shape), rounding, centres)
        return y_hat, (scales, means), means.detach() if self.context_model else None

    def encoder_y(self, y, z_hat, start=None, exact=False):
        """The hard y_hat CompressAI's compress writes: the same passes, hard (a raster-scan context: its fixed
        point, from `start`; exact is not implemented there: the fixed point also when it is asked)."""
        y_hat, scales, means = self.node.run(y, self.hyper_synthesis(z_hat, y.shape), hard_rounding, start)
        sweeps = max((node.sweeps for node in nodes_of(self.node) if hasattr(node, "sweeps")), default=0)
        return y_hat, (scales, means), means if self.context_model else None, sweeps

    def bits(self, y_hat, z_hat, entropy):
        y_bits = self.node.bits(y_hat, *entropy)
        return y_bits if z_hat is None else y_bits + bottleneck_bits(self.hyper.entropy_bottleneck, z_hat)

    def compress_image(self, y_hat, z_hat):
        """CompressAI's codecs on the hard latents: z_hat by the entropy bottleneck, y_hat by y's codec given
        h_s of the decoded z_hat; the strings in the order the model's decompress takes them."""
        if self.hyper is None:
            strings = self.y_codec.compress(y_hat)["strings"]
        else:
            bottleneck = self.hyper.entropy_bottleneck
            z_strings = bottleneck.compress(z_hat)
            params = self.hyper_synthesis(bottleneck.decompress(z_strings, z_hat.shape[-2:]), y_hat.shape)
            strings = [*self.y_codec.compress(y_hat, params)["strings"], z_strings]
        return [string for [string] in strings]

    def decompress(self, strings, z_size):
        y_size = tuple(side * self.z_stride // self.y_stride for side in z_size)
        shape = self.node.coded_shape((self.y_channels, *y_size))
        if self.hyper is not None:
            shape = {"y": shape, "hyper": torch.Size(z_size)}
        return self.model.decompress([[string] for string in strings], shape)["x_hat"]
