"""Shared pieces of the refiner tests: a crop of a held-out sample image and the bundled codec."""
import functools

from sgaplus.codecs.loading import load_codec
from sgaplus.images import load_shipped_image


def sample_crop(size=128, name="astronaut", top=0, left=0):
    image = load_shipped_image(name)
    h, w = (size, size) if isinstance(size, int) else size
    return image[:, top:top + h, left:left + w].unsqueeze(0)


@functools.lru_cache(maxsize=None)
def bundled_codec(quality=None):
    return load_codec(quality=quality)
