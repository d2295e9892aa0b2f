"""Image input for classifiers, prepared exactly as TFLite's label_image does.

label_image decodes the image to 8-bit RGB, converts it to float, resizes it
with TFLite's RESIZE_BILINEAR (align_corners=false, half_pixel_centers=false)
and casts each value back to uint8 by truncation.  Matching that bit for bit
matters: our results are compared with TFLite's on the same input bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, LimitError
from ..host.fixedpoint import round_half_away

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
    usual convention for int8 image models; float32 inputs get the resized
    values (0..255) unnormalized.
    """
    return image_input(path, (1, height, width, 3), dtype, normalization=RAW if dtype == "float32" else None)


@dataclass(frozen=True)
class Normalization:
    """``(pixel - mean) / std`` per channel (one value: every channel), in float32."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, resized: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (resized - mean) / std


#: The resized pixel values as they are.
RAW = Normalization((0.0,), (1.0,))
#: label_image's default for float models: input_mean = input_std = 127.5, i.e. [-1, 1].
LABEL_IMAGE_FLOAT = Normalization((127.5,), (127.5,))


def image_layout(shape: tuple[int, ...]) -> str | None:
    """"nhwc" for [1, H, W, 3], "nchw" for [1, 3, H, W] (PyTorch exports), None when no image fits."""
    if len(shape) != 4 or shape[0] != 1:
        return None
    if shape[3] == 3:
        return "nhwc"
    return "nchw" if shape[1] == 3 else None


@dataclass(frozen=True)
class Fit:
    """Where an image of image_w x image_h lands in an input of input_w x input_h: resized to width x height
    with its top-left corner at (left, top); the rest (with --letterbox) is gray 114."""

    image_w: int
    image_h: int
    input_w: int
    input_h: int
    left: int
    top: int
    width: int
    height: int


#: The pixel value a letterbox pads with (YOLO's gray).
LETTERBOX_GRAY = 114.0


def fit_image(image_w: int, image_h: int, input_w: int, input_h: int, letterbox: bool = False) -> Fit:
    """How the image fills the input: stretched to all of it, or (letterbox) scaled keeping its aspect ratio,
    the scaled side rounded half up in integers, and centred (the odd pixel of padding right or below)."""
    if not letterbox:
        return Fit(image_w, image_h, input_w, input_h, 0, 0, input_w, input_h)
    if input_w * image_h <= input_h * image_w:  # the width limits the scale
        width, height = input_w, min(max((2 * image_h * input_w + image_w) // (2 * image_w), 1), input_h)
    else:
        width, height = min(max((2 * image_w * input_h + image_h) // (2 * image_h), 1), input_w), input_h
    return Fit(image_w, image_h, input_w, input_h, (input_w - width) // 2, (input_h - height) // 2, width, height)


def input_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) of an image input's shape."""
    layout = image_layout(tuple(shape))
    return (shape[2], shape[1]) if layout == "nhwc" else (shape[3], shape[2])


def image_input(path: str | Path, shape: tuple[int, ...], dtype: str, scale: float = 0.0, zero_point: int = 0,
                normalization: Normalization | None = None) -> np.ndarray:
    """An image file as the model input of ``shape`` (NHWC or NCHW): :func:`rgb_input` of its pixels."""
    layout = image_layout(tuple(shape))
    if layout is None:
        raise InputError(f"{path}: the model input {list(shape)} is not an image ([1, H, W, 3] or [1, 3, H, W])")
    return rgb_input(load_rgb(path), shape, dtype, scale, zero_point, normalization, str(path))


def rgb_input(rgb: np.ndarray, shape: tuple[int, ...], dtype: str, scale: float = 0.0, zero_point: int = 0,
              normalization: Normalization | None = None, path: str = "image", letterbox: bool = False) -> np.ndarray:
    """HxWx3 pixels as the model input of ``shape`` (NHWC or NCHW), resized as label_image does.

    Without a normalization, uint8 inputs get the truncated pixels, int8 ones
    the truncated pixels minus 128 and float32 ones label_image's [-1, 1].  With
    one, the resized values are normalized in float32 and, for a quantized
    input, quantized with its scale and zero point (rounding half away from
    zero, as TFLite's QUANTIZE does).  With ``letterbox`` the image keeps its
    aspect ratio (:func:`fit_image`) and the rest of the input is gray 114.
    """
    layout = image_layout(tuple(shape))
    if layout is None:
        raise InputError(f"{path}: the model input {list(shape)} is not an image ([1, H, W, 3] or [1, 3, H, W])")
    width, height = input_size(shape)
    fit = fit_image(rgb.shape[1], rgb.shape[0], width, height, letterbox)
    resized = resize_bilinear_float(rgb, fit.height, fit.width)
    if letterbox:
        canvas = np.full((height, width, 3), LETTERBOX_GRAY, dtype=np.float32)
        canvas[fit.top:fit.top + fit.height, fit.left:fit.left + fit.width] = resized
        resized = canvas
    if dtype not in ("uint8", "int8", "float32"):
        raise InputError(f"{path}: cannot feed an image to an input of type {dtype}")
    if normalization is None and dtype != "float32":
        pixels = resized.astype(np.uint8).astype(np.int16) - (128 if dtype == "int8" else 0)
        out = pixels.astype(dtype)
    else:
        real = (normalization or LABEL_IMAGE_FLOAT).apply(resized)
        if dtype == "float32":
            out = real
        else:
            info = np.iinfo(dtype)
            q = round_half_away(real / np.float32(scale)) + zero_point
            out = np.clip(q, info.min, info.max).astype(dtype)
    if layout == "nchw":
        out = out.transpose(2, 0, 1)
    return np.ascontiguousarray(out[None, ...])
