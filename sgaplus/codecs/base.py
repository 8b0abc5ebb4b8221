"""HyperpriorCodec: what the refiner needs of a codec (a VAE with a hyperprior, and the variants an adapter
declares: no z, or a causal context model). Adapters subclass it."""
from abc import ABC, abstractmethod

import torch


def round_around(value, offsets):
    """Hard rounding of value on the integer grid shifted by offsets (None: the integers)."""
    return torch.round(value) if offsets is None else torch.round(value - offsets) + offsets


def hard_rounding(value, offsets, stream=0):
    """The encoder's rounding, with the signature of the refiner's relaxed rounding."""
    return round_around(value, offsets)


class HyperpriorCodec(ABC):
    """A codec y = g_a(x), z = h_a(y); (scales, means) = h_s(z_hat); x_hat = g_s(y_hat).

    Attributes: `model_id` names the weights (it goes into bitstreams), `lmbda` the training lambda
    (None if unknown), `metric` the distortion it was trained for ("mse", "ms-ssim"; None if unknown),
    `multiple` the size images are padded to, `has_means` whether y is coded around
    predicted means, `has_z` whether there is a z at all (False: a factorized prior, y has its own
    entropy bottleneck), `context_model` whether y's entropy parameters depend on the already-coded y_hat
    through a causal context (then `y_latents` and `encoder_y` are overridden and return rounding centres),
    `exact_encoder` whether `encoder_y(exact=True)` computes y_hat as the decoder does (otherwise it ignores exact),
    `variable_rate` whether the model codes at a rate chosen by a level or gain (its adapter takes them),
    `z_stride` how many pixels one position of the coded size in the bitstream header covers (z's, or y's
    without z), `strings_per_image` how many entropy-coded strings `compress` writes per image.
    """
    model_id: str
    lmbda = None
    metric = None
    multiple = 64
    has_means = True
    has_z = True
    context_model = False
    exact_encoder = False
    variable_rate = False
    z_stride = 64
    strings_per_image = 2

    def z_size(self, image_size):
        """The coded size in the bitstream (z's spatial size; y's without z) for an image of image_size (padded
        to `multiple` first)."""
        return tuple(-(-side // self.multiple) * self.multiple // self.z_stride for side in image_size)

    def y_latents(self, y, z_hat, rounding, centres=None):
        """(y_hat, entropy, centres): y rounded by rounding(value, offsets, stream=0) around its entropy model's
        means; `entropy`, what `bits` needs of y's entropy model (here its (scales, means)); and a context model's
        rounding centres for the next relaxed step (docs/refinement.md; None here). A codec that rounds y in
        several parts gives each call its own stream number, so each part draws its own noise. centres: a
        context model's rounding centres for this step (the previous iterate's means), unused here."""
        scales, means = self.hyper_synthesis(z_hat, y.shape)
        return rounding(y, means), (scales, means), None

    def encoder_y(self, y, z_hat, start=None, exact=False):
        """(y_hat, entropy, centres, sweeps): the hard y_hat that `compress` writes for y, what `bits` needs of
        its entropy model, a context model's rounding centres (its means; None otherwise), and how many parallel
        sweeps found it (a context model; 0 otherwise). start: a context model's first guess (the previous
        check's y_hat); exact: a context model's y_hat computed as its decoder computes, serially (context.py);
        both unused here."""
        y_hat, entropy, centres = self.y_latents(y, z_hat, hard_rounding)
        return y_hat, entropy, centres, 0

    @abstractmethod
    def to(self, device):
        """Move the codec's weights to device; returns self."""

    @abstractmethod
    def analysis(self, x):
        """y = g_a(x) for an image batch (B, 3, H, W) padded to `multiple`."""

    @abstractmethod
    def hyper_analysis(self, y):
        """z = h_a(y) (None without z)."""

    @abstractmethod
    def z_offsets(self):
        """The offsets z is rounded around (the entropy bottleneck's medians), broadcastable to z."""

    @abstractmethod
    def hyper_synthesis(self, z_hat, y_shape):
        """(scales, means or None) for y, cropped to y_shape. Without z: (None, the offsets y is rounded around).
        A context model returns what h_s gives (its y_latents combines it with the context)."""

    @abstractmethod
    def synthesis(self, y_hat):
        """x_hat = g_s(y_hat)."""

    def forward_reconstruction(self, entropy):
        """x_hat when the pass that made `entropy` already reconstructed the image (a codec driven through its
        model's own forward), else None: the refiner then calls `synthesis`."""
        return None

    def synthesis_stages(self):
        """Functions whose composition, in order, is `synthesis`: the refiner recomputes them one at a time in the
        backward when memory is short (activation checkpointing). One stage unless an adapter splits g_s."""
        return [self.synthesis]

    @abstractmethod
    def bits(self, y_hat, z_hat, entropy):
        """Bits of each image in the batch, (B,), from the entropy models' likelihoods (entropy: what y_latents
        returned with y_hat)."""

    def compress(self, y_hat, z_hat):
        """Entropy code hard latents (y_hat from encoder_y, z_hat on its offsets; None without z): one list of
        byte strings per image, each image coded alone (`compress_image`). The decoder computes an image's entropy
        parameters for that one image; computed for a batch, a convolution can differ in its last bits, a scale on
        a boundary of the coder's table then gets another index, and the file decodes to another image."""
        return [self.compress_image(y_hat[i:i + 1], None if z_hat is None else z_hat[i:i + 1])
                for i in range(y_hat.shape[0])]

    @abstractmethod
    def compress_image(self, y_hat, z_hat):
        """One image's byte strings from its hard latents (batches of one), computed as its decoder computes."""

    @abstractmethod
    def decompress(self, strings, z_size):
        """x_hat (1, 3, H', W') from one image's strings and the coded size (see z_size)."""
