"""Shared pieces of the refiner tests: a crop of a held-out sample image and the bundled codec."""
import functools

import torch

from sgaplus.checkpoints import load_codec
from sgaplus.images import load_shipped_image


def sample_crop(size=128, name="astronaut", top=0, left=0):
    image = torch.from_numpy(load_shipped_image(name)).permute(2, 0, 1).float().div(255)
    h, w = (size, size) if isinstance(size, int) else size
    return image[:, top:top + h, left:left + w].unsqueeze(0)


@functools.lru_cache(maxsize=None)
def bundled_codec(quality=None):
    return load_codec(quality=quality)
