"""Image input for classifiers, prepared exactly as TFLite's label_image does.

label_image decodes the image to 8-bit RGB, converts it to float, resizes it
with TFLite's RESIZE_BILINEAR (align_corners=false, half_pixel_centers=false)
and casts each value back to uint8 by truncation.  Matching that bit for bit
matters: our results are compared with TFLite's on the same input bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, LimitError

#: Largest image npu-run decodes (pixels); larger files are refused before decoding.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file (BMP, PNG, JPEG, PPM ...) into a HxWx3 uint8 array."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w <= 0 or h <= 0:
                raise InputError(f"{path}: image has no pixels ({w}x{h})")
            if w * h > MAX_IMAGE_PIXELS:
                raise LimitError(f"{path}: image of {w}x{h} pixels exceeds the limit of {MAX_IMAGE_PIXELS} pixels")
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image format Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: cannot decode image ({e})") from None


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and fractions for one axis, in float32 as TFLite computes them."""
    scale = np.float32(in_size) / np.float32(out_size)
    pos = np.arange(out_size, dtype=np.float32) * scale
    lo = np.floor(pos)
    i0 = np.maximum(lo.astype(np.int64), 0)
    i1 = np.minimum(np.ceil(pos).astype(np.int64), in_size - 1)
    return i0, i1, (pos - lo).astype(np.float32)


def resize_bilinear_float(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TFLite's float RESIZE_BILINEAR (no corner alignment, no half-pixel centres), HxWxC."""
    img = image.astype(np.float32)
    y0, y1, dy = _axis_weights(img.shape[0], out_h)
    x0, x1, dx = _axis_weights(img.shape[1], out_w)
    dy = dy[:, None, None]
    dx = dx[None, :, None]
    one = np.float32(1)
    # Same association order as TFLite's kernel: each corner times (weight y) times (weight x), summed left to right.
    tl = img[y0][:, x0] * (one - dy) * (one - dx)
    bl = img[y1][:, x0] * dy * (one - dx)
    tr = img[y0][:, x1] * (one - dy) * dx
    br = img[y1][:, x1] * dy * dx
    return ((tl + bl) + tr) + br


def load_image_input(path: str | Path, height: int, width: int, dtype: str = "uint8") -> np.ndarray:
    """An image as a 1xHxWx3 model input, resized and truncated as label_image does.

    For int8 inputs label_image's uint8 pipeline is used and 128 subtracted, the
    usual convention for int8 image models.
    """
    rgb = load_rgb(path)
    resized = resize_bilinear_float(rgb, height, width)
    if dtype == "uint8":
        out = resized.astype(np.uint8)
    elif dtype == "int8":
        out = (resized.astype(np.uint8).astype(np.int16) - 128).astype(np.int8)
    elif dtype == "float32":
        out = resized
    else:
        raise InputError(f"{path}: cannot feed an image to an input of type {dtype}")
    return out[None, ...]
