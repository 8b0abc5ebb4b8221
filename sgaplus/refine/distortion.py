"""What the refiner measures a reconstruction by. The loss is lambda * scale * distortion(x_hat, x) + bpp, as the
model was trained: MSE with scale 255^2 (CompressAI's MSE models), 1 - MS-SSIM on images in [0, 1] with scale 1
(CompressAI's MS-SSIM models, with pytorch-msssim's ms_ssim, as CompressAI's RateDistortionLoss), or a
differentiable distortion of the user's own."""
import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..codecs.registry import equivalent_lambda

MS_SSIM_MIN_SIDE = 161  # pytorch-msssim's five scales of an 11-pixel window need sides above (11 - 1) * 2**4
MSE_SCALE = 255 ** 2  # CompressAI's MSE loss: lambda * 255^2 * MSE + bpp


@dataclass(frozen=True)
class Distortion:
    """A per-image distortion: function(x_hat, x) -> (B,), differentiable; the loss weighs it by lambda * scale.
    min_side: the smallest image side it is defined on."""
    name: str
    function: Callable
    scale: float = 1.0
    min_side: int = 1

    def __call__(self, x_hat, x):
        value = self.function(x_hat, x)
        if not (isinstance(value, torch.Tensor) and value.shape == (x.shape[0],)):
            raise ValueError(f"the distortion {self.name!r} must return one value per image, shape "
                             f"({x.shape[0]},); got {getattr(value, 'shape', type(value).__name__)}")
        return value

    def check_size(self, size, what="the image"):
        """ValueError unless a (height, width) image is large enough for this distortion."""
        if min(size) < self.min_side:
            raise ValueError(f"{self.name} needs images of at least {self.min_side}x{self.min_side} pixels (its "
                             f"five scales); {what} is {size[1]}x{size[0]}")


def mse(x_hat, x):
    return ((x_hat - x) ** 2).flatten(1).mean(dim=1)


def one_minus_ms_ssim(x_hat, x):
    from pytorch_msssim import ms_ssim
    return 1 - ms_ssim(x_hat, x, data_range=1.0, size_average=False)


DISTORTIONS = {"mse": Distortion("mse", mse, MSE_SCALE),
               "ms-ssim": Distortion("ms-ssim", one_minus_ms_ssim, 1.0, MS_SSIM_MIN_SIDE)}


def distortion_of(value):
    """A Distortion from a name ("mse", "ms-ssim"), a Distortion, or a function (x_hat, x) -> (B,) (scale 1)."""
    if isinstance(value, Distortion):
        return value
    if isinstance(value, str):
        if value not in DISTORTIONS:
            raise ValueError(f"unknown distortion {value!r}; valid: {', '.join(DISTORTIONS)}, or a Distortion")
        return DISTORTIONS[value]
    if callable(value):
        return Distortion(getattr(value, "__name__", "distortion"), value)
    raise TypeError(f"distortion must be a name, a Distortion or a function, got {type(value).__name__}")


def ms_ssim(x_hat, x):
    """Per-image MS-SSIM of reconstructions in [0, 1] (a list); None for images too small for its five scales."""
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    with torch.no_grad():
        return (1 - one_minus_ms_ssim(x_hat.float(), x.float())).tolist()


def ms_ssim_db(value):
    """MS-SSIM in decibels, -10 log10(1 - MS-SSIM) (None stays None)."""
    return None if value is None else -10 * math.log10(max(1 - value, 1e-12))


def objective_for(codec, metric=None, lmbda=None):
    """(metric, lambda) to refine codec for: metric, else what the model was trained for (MSE if that is not known);
    lmbda, else None (the codec's training lambda), except for another metric than the model's: the other metric's
    lambda at the place of the training lambda in CompressAI's tables (registry.equivalent_lambda)."""
    metric = metric or codec.metric or "mse"
    if lmbda is not None or codec.metric in (None, metric) or codec.lmbda is None:
        return metric, lmbda
    return metric, equivalent_lambda(codec.lmbda, codec.metric, metric)
