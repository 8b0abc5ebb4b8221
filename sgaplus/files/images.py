"""Images in and out: the sample images skimage ships, RGB file reading with clear errors, atomic writes."""
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import SgaplusError
from .bitstream import MAX_PIXELS

# Images skimage.data ships on disk (no download). The evaluation images are held out of the
# bundled models' training; the grayscale ones are trained on as three equal channels.
TRAIN_IMAGES = ("chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                "motorcycle_left", "motorcycle_right")
GRAYSCALE_TRAIN_IMAGES = ("camera", "brick", "grass", "gravel", "moon", "coins", "page", "text", "cell", "clock")
EVAL_IMAGES = ("astronaut", "coffee")
# Images no bundled model was trained on, for choosing defaults: the held-out two, skimage's synthetic colour wheel
# and the photograph matplotlib ships (matplotlib is in the bench extra).
UNSEEN_IMAGES = EVAL_IMAGES + ("colorwheel", "grace_hopper")


class ImageError(SgaplusError, ValueError):
    """An input that is not an 8-bit RGB image."""


def rgb_tensor(array):
    """(3, H, W) float tensor in [0, 1] from an (H, W, 3) uint8 array."""
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255)


def load_shipped_image(name):
    """(3, H, W) float tensor in [0, 1] of an image that scikit-image ships (grayscale ones as three channels)."""
    import skimage.data
    if name in ("motorcycle_left", "motorcycle_right"):
        return rgb_tensor(skimage.data.stereo_motorcycle()[0 if name == "motorcycle_left" else 1])
    if name in GRAYSCALE_TRAIN_IMAGES:
        return rgb_tensor(np.repeat(getattr(skimage.data, name)()[..., None], 3, axis=2))
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image
        with cbook.get_sample_data("grace_hopper.jpg") as file:
            return rgb_tensor(np.array(Image.open(file).convert("RGB")))
    known = TRAIN_IMAGES + GRAYSCALE_TRAIN_IMAGES + UNSEEN_IMAGES
    if name not in known:
        raise ImageError(f"unknown sample image {name!r}; samples: {', '.join(known)}")
    return rgb_tensor(getattr(skimage.data, name)())


def read_rgb(path, max_pixels=MAX_PIXELS):
    """(1, 3, H, W) float tensor in [0, 1] from an 8-bit RGB image file of at most max_pixels; ImageError
    otherwise, whatever the bytes (a malformed file is the user's, so whatever Pillow raises on it is reported in
    one line). The size is checked from the header, before the pixels are decoded."""
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"no such image file: {path}")
    try:
        with warnings.catch_warnings():  # Pillow's own size guard: ours below is stricter
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                check_rgb(path, image, max_pixels)
                array = np.asarray(image, dtype=np.uint8).copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file PIL can read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: its header claims an image larger than sgaplus reads "
                         f"({max_pixels:,} pixels at most)") from None
    except Exception as error:  # any decoder error on malformed bytes: the file, not our code
        raise ImageError(f"{path}: cannot read the image ({type(error).__name__}: {error})") from None
    if array.shape != (image.height, image.width, 3):
        raise ImageError(f"{path}: decoded to an array of shape {array.shape}, not an RGB image")
    return rgb_tensor(array).unsqueeze(0)


def check_rgb(path, image, max_pixels):
    """ImageError unless the opened image is 8-bit RGB of 1 to max_pixels pixels (checked before decoding)."""
    mode = image.mode
    if mode == "RGB" and any(";16" in str(tile.args) for tile in image.tile):
        mode = "RGB;16"  # Pillow reads 16-bit RGB as 8-bit "RGB", dropping the low byte
    if mode != "RGB":
        kinds = {"L": "grayscale", "LA": "grayscale with alpha", "RGBA": "RGB with alpha", "I;16": "16-bit",
                 "RGB;16": "16-bit RGB", "I": "32-bit integer", "P": "palette", "1": "1-bit"}
        raise ImageError(f"{path}: {kinds.get(mode, mode)} image; sgaplus codes 8-bit RGB images "
                         f"(convert it first, e.g. with PIL's Image.convert('RGB'))")
    width, height = image.size
    if not (width >= 1 and height >= 1 and width * height <= max_pixels):
        raise ImageError(f"{path}: a {width}x{height} image; sgaplus reads images of 1 to {max_pixels:,} pixels")


def write_atomic(path, data):
    """Write bytes to path through a temporary file in the same folder, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:  # an interrupt or a full disk leaves no temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def write_png(path, x):
    """Save a (1, 3, H, W) tensor in [0, 1] as an 8-bit PNG, atomically."""
    import io

    from PIL import Image
    array = x[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
