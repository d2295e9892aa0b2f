"""``npu-run --draw``: the input image with the detections drawn on it, as PNG bytes.

Boxes are 2-pixel rectangles (the C npu-run draws the same rectangles), one colour per class, each with its
score and label written above it (the C npu-run writes no text).
"""

from __future__ import annotations

import io

import numpy as np

from .detect import Detection, label_of, pixel_box

#: Box colours, by class index modulo their count (the C npu-run's table).
PALETTE = ((255, 56, 56), (255, 157, 151), (255, 112, 31), (255, 178, 29), (207, 210, 49), (72, 249, 10),
           (146, 204, 23), (61, 219, 134), (26, 147, 52), (0, 212, 187), (44, 153, 168), (0, 194, 255),
           (52, 69, 147), (100, 115, 255), (0, 24, 236), (132, 56, 255), (82, 0, 133), (203, 56, 255),
           (255, 149, 200), (255, 55, 199))
LINE_WIDTH = 2


def colour(cls: int) -> tuple[int, int, int]:
    return PALETTE[cls % len(PALETTE)]


def clamped_box(d: Detection, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel box inside the image (its right and bottom edges on the last column and row at most)."""
    x0, y0, x1, y1 = pixel_box(d)
    return min(x0, width - 1), min(y0, height - 1), min(x1, width - 1), min(y1, height - 1)


def draw_png(rgb: np.ndarray, dets: list[Detection], labels: list[str]) -> bytes:
    """The HxWx3 image with every detection's box and label, encoded as PNG."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for d in dets:
        x0, y0, x1, y1 = clamped_box(d, img.width, img.height)
        draw.rectangle((x0, y0, max(x0, x1), max(y0, y1)), outline=colour(d.cls), width=LINE_WIDTH)
        label = label_of(labels, d.cls)
        text = f"{d.score:.2f} {label}".rstrip()
        left, top, right, bottom = draw.textbbox((0, 0), text)
        ty = y0 - (bottom - top) - 3 if y0 - (bottom - top) - 3 >= 0 else y0 + LINE_WIDTH
        draw.rectangle((x0, ty, x0 + right - left + 3, ty + bottom - top + 2), fill=colour(d.cls))
        draw.text((x0 + 2, ty + 1 - top), text, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
