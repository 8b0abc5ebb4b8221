"""Each image's own noise (docs/refinement.md, "Noise per image"): a stream keyed by the run's seed and the image's
pixels, so that an image draws the same noise alone, in any batch, at any place in it, on any process."""
import hashlib

import torch

from ..ops._common import draw_seed


def image_key(seed, image):
    """A key in [0, 2**63) of the run's seed and an image (3, H, W): its pixels as float32, and its size."""
    pixels = image.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(f"{seed} {tuple(pixels.shape)} ".encode() + pixels.numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class ImageNoise:
    """The noise of a batch's images, one torch.Generator (on x's device) per image, seeded with its key.

    `of_step(step, images)` is a step's noise source for the rows' images, by `kind`: "sga" (the SGA methods), the
    (2, rows) tensor of their seeds (z's, y's), drawn from each image's generator once, before the first step;
    "uniform", their own generators (the uniform baseline draws its noise from them, row by row); None (no noise).
    """

    def __init__(self, x, seed, steps, kind):
        self.kind = kind
        self.generators = [torch.Generator(device=x.device).manual_seed(image_key(seed, image)) for image in x]
        self.seeds = None
        if kind == "sga" and steps:
            self.seeds = torch.stack([draw_seed(g, shape=(steps, 2)) for g in self.generators], dim=-1)

    def of_step(self, step, images):
        if self.kind == "uniform":
            return [self.generators[i] for i in images]
        if self.kind is None:
            return None
        seeds = self.seeds[step - 1]
        return seeds if len(images) == seeds.shape[1] else seeds[:, images]
