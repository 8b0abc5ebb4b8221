"""HyperpriorCodec: what the refiner needs of a codec (a VAE with a hyperprior). Adapters subclass it."""
from abc import ABC, abstractmethod


class HyperpriorCodec(ABC):
    """A codec y = g_a(x), z = h_a(y); (scales, means) = h_s(z_hat); x_hat = g_s(y_hat).

    Attributes: `model_id` names the weights (it goes into bitstreams), `lmbda` the training lambda
    (None if unknown), `multiple` the size images are padded to, `has_means` whether h_s predicts means,
    `z_stride` how many pixels one position of z covers, `strings_per_image` how many entropy-coded strings
    `compress` writes per image.
    """
    model_id: str
    lmbda = None
    multiple = 64
    has_means = True
    z_stride = 64
    strings_per_image = 2

    def z_size(self, image_size):
        """z's spatial size for an image of image_size (padded to `multiple` first)."""
        return tuple(-(-side // self.multiple) * self.multiple // self.z_stride for side in image_size)

    @abstractmethod
    def to(self, device):
        """Move the codec's weights to device; returns self."""

    @abstractmethod
    def analysis(self, x):
        """y = g_a(x) for an image batch (B, 3, H, W) padded to `multiple`."""

    @abstractmethod
    def hyper_analysis(self, y):
        """z = h_a(y)."""

    @abstractmethod
    def z_offsets(self):
        """The offsets z is rounded around (the entropy bottleneck's medians), broadcastable to z."""

    @abstractmethod
    def hyper_synthesis(self, z_hat, y_shape):
        """(scales, means or None) for y, cropped to y_shape."""

    @abstractmethod
    def synthesis(self, y_hat):
        """x_hat = g_s(y_hat)."""

    @abstractmethod
    def bits(self, y_hat, z_hat, scales, means):
        """Bits of each image in the batch, (B,), from the entropy models' likelihoods."""

    @abstractmethod
    def compress(self, y_hat, z_hat):
        """Entropy code hard latents (y_hat on its means, z_hat on its offsets): one list of byte strings per image."""

    @abstractmethod
    def decompress(self, strings, z_size):
        """x_hat (1, 3, H', W') from one image's strings and z's spatial size."""
