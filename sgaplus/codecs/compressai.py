"""What CompressAI's adapters share (CompressAIAdapter), and the adapter for its hyperprior models:
MeanScaleHyperprior (mbt2018-mean) and ScaleHyperprior (bmshj2018-hyperprior)."""
from abc import abstractmethod

import torch

from ..errors import ModelError
from .base import HyperpriorCodec
from .forward_transforms import ForwardTransforms


def bottleneck_bits(bottleneck, values):
    """Bits of each image (B,) of hard values (B, C, H, W) under a CompressAI EntropyBottleneck."""
    channels, batch = values.shape[1], values.shape[0]
    # the entropy bottleneck scores channels first, as its forward does
    likelihood = bottleneck._likelihood(values.transpose(0, 1).reshape(channels, 1, -1))[0]
    if bottleneck.use_likelihood_bound:
        likelihood = bottleneck.likelihood_lower_bound(likelihood)
    return -torch.log2(likelihood).reshape(channels, batch, -1).sum(dim=(0, 2))


def gaussian_bits(gaussian_conditional, y_hat, scales, means):
    """Bits per image (B,) of y_hat under a CompressAI GaussianConditional, as its coder prices them."""
    likelihood = gaussian_conditional._likelihood(y_hat, scales, means)
    if gaussian_conditional.use_likelihood_bound:
        likelihood = gaussian_conditional.likelihood_lower_bound(likelihood)
    return -torch.log2(likelihood).flatten(1).sum(dim=1)


def check_model(model, classes, excluded=()):
    """TypeError unless model is one of the CompressAI classes (and none of the excluded subclasses)."""
    if not isinstance(model, classes) or isinstance(model, excluded):
        names = " or ".join(c.__name__ for c in classes)
        raise TypeError(f"expected a CompressAI {names}, got {type(model).__name__}")


class CompressAIAdapter(HyperpriorCodec):
    """A CompressAI model (updated with model.update()) of the classes `wraps` names, its id and training lambda;
    g_a and g_s."""

    @staticmethod
    @abstractmethod
    def wraps():
        """(the CompressAI classes this adapter takes, subclasses of them it refuses)."""

    def __init__(self, model, model_id, lmbda=None):
        check_model(model, *self.wraps())
        self.model = model.eval().requires_grad_(False)
        self.model_id = model_id
        self.lmbda = lmbda
        self.transforms = None  # a subclass's own analysis and synthesis, where g_a and g_s are not modules
        if not all(isinstance(getattr(model, name, None), torch.nn.Module) for name in ("g_a", "g_s")):
            if not self.transforms_from_forward(model):
                raise ModelError(f"{type(model).__name__}'s g_a or g_s is not a module: sgaplus finds a subclass's own "
                                 f"analysis and synthesis from its forward only for CompressAI's mean-scale and "
                                 f"context models; give it g_a and g_s modules")
            self.transforms = ForwardTransforms(model)

    def transforms_from_forward(self, model):
        """Whether model's forward hands y itself to h_a and synthesises from what it rounds (ForwardTransforms)."""
        from compressai.models import MeanScaleHyperprior
        return isinstance(model, MeanScaleHyperprior) and not self.variable_rate

    def to(self, device):
        self.model.to(device)
        return self

    def analysis(self, x):
        return self.model.g_a(x) if self.transforms is None else self.transforms.analysis(x)

    def synthesis(self, y_hat):
        return self.model.g_s(y_hat) if self.transforms is None else self.transforms.synthesis(y_hat)

    def synthesis_stages(self):
        """g_s's layers, where it is a sequence of them (every CompressAI image model's is)."""
        return list(self.model.g_s) if isinstance(self.model.g_s, torch.nn.Sequential) else [self.synthesis]


class CompressAIHyperprior(CompressAIAdapter):
    """Wraps a CompressAI MeanScaleHyperprior or ScaleHyperprior."""

    @staticmethod
    def wraps():
        from compressai.models import (
            JointAutoregressiveHierarchicalPriors,
            MeanScaleHyperprior,
            ScaleHyperprior,
            ScaleHyperpriorVbr,
        )
        # a context model and the variable-rate models subclass these but code otherwise
        return (MeanScaleHyperprior, ScaleHyperprior), (JointAutoregressiveHierarchicalPriors, ScaleHyperpriorVbr)

    def __init__(self, model, model_id, lmbda=None):
        super().__init__(model, model_id, lmbda)
        from compressai.models import MeanScaleHyperprior
        self.has_means = isinstance(model, MeanScaleHyperprior)

    def hyper_analysis(self, y):
        """z = h_a(y), or h_a(|y|) for a scale-only hyperprior, as its compress computes it."""
        return self.model.h_a(y if self.has_means else torch.abs(y))

    def z_offsets(self):
        return self.model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def hyper_synthesis(self, z_hat, y_shape):
        params = self.model.h_s(z_hat)[..., :y_shape[-2], :y_shape[-1]]
        if self.has_means:
            scales, means = params.chunk(2, 1)
            return scales, means
        return params, None

    def bits(self, y_hat, z_hat, entropy):
        scales, means = entropy
        return bottleneck_bits(self.model.entropy_bottleneck, z_hat) + \
            gaussian_bits(self.model.gaussian_conditional, y_hat, scales, means)

    def compress_image(self, y_hat, z_hat):
        eb, gc = self.model.entropy_bottleneck, self.model.gaussian_conditional
        [z_string] = eb.compress(z_hat)
        scales, means = self.hyper_synthesis(eb.decompress([z_string], z_hat.shape[-2:]), y_hat.shape)
        [y_string] = gc.compress(y_hat, gc.build_indexes(scales), means=means)
        return [y_string, z_string]

    def decompress(self, strings, z_size):
        return self.model.decompress([[strings[0]], [strings[1]]], z_size)["x_hat"]
