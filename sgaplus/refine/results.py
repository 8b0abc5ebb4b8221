"""What a refinement measures and returns: per-image metrics, one true-loss check, and the result."""
from dataclasses import dataclass, field

import torch


@dataclass
class Metrics:
    """Per-image figures of one set of latents: the loss and its parts."""
    loss: list
    bpp: list
    psnr: list
    mse: list
    distortion: list  # what the loss weighs: the refiner's distortion (equal to mse for MSE)

    def row(self, i):
        return {name: values[i] for name, values in vars(self).items()}

    def copy(self):
        return Metrics(*(list(values) for values in vars(self).values()))


@dataclass
class Check:
    """One true-loss check of the rows still refining: their metrics, reconstructions (cropped to the image size,
    clamped as the decoder outputs them), the hard latents the encoder writes (z_hat None without z), and how many
    fixed-point sweeps found a context model's y_hat (0 otherwise)."""
    metrics: Metrics
    x_hat: torch.Tensor
    y_hat: torch.Tensor
    z_hat: torch.Tensor
    sweeps: int


@dataclass
class RefinementResult:
    """What a refinement returns: best hard latents, base and best metrics, and the history of checks."""
    y_hat: torch.Tensor
    z_hat: torch.Tensor  # None for a codec without z
    x_hat: torch.Tensor  # reconstruction of the best latents, cropped to the image size
    base: Metrics
    best: Metrics
    best_step: list
    nonfinite_step: list  # per image: the check step that found it non-finite (it stopped there), or None
    stopped_step: list  # per image: the check step early stopping or max_seconds ended it at, or None
    lmbda: list  # per image: the lambda at the end (the refiner's, or where a rate target moved it)
    history: list = field(default_factory=list)  # per check: step, tau, and per-image lists (see History)
    base_x_hat: torch.Tensor = None  # reconstruction of the unrefined latents, cropped to the image size
