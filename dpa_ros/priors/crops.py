"""Instance crops on a white square canvas (docs/method.md, stage 2), shared by the enhancer and scorer."""
from __future__ import annotations

import numpy as np
from PIL import Image


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) half-open bounds of a non-empty (H, W) bool mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty mask")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def white_canvas_crop(image_rgb: np.ndarray, mask: np.ndarray, size: int = 512, fill: float = 0.6) -> np.ndarray:
    """The masked instance, pixels outside the mask white, centred on a white ``size`` × ``size`` canvas.

    The crop is scaled (bicubic, aspect kept) so that its longer side is ``fill · size`` pixels.
    Returns a (size, size, 3) uint8 RGB image.
    """
    image_rgb = np.asarray(image_rgb)
    mask = np.asarray(mask, dtype=bool)
    if image_rgb.shape[:2] != mask.shape:
        raise ValueError(f"mask shape {mask.shape} does not match image {image_rgb.shape[:2]}")
    r0, r1, c0, c1 = mask_bbox(mask)
    crop = np.where(mask[r0:r1, c0:c1, None], image_rgb[r0:r1, c0:c1, :3], 255).astype(np.uint8)
    h, w = crop.shape[:2]
    scale = fill * size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(crop).resize((nw, nh), Image.BICUBIC))
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top:top + nh, left:left + nw] = resized
    return canvas
