"""A picture of a reconstruction: the input image with each fitted object drawn over it.

:func:`draw_overlay` projects every object's placed mesh (``SceneObject.mesh_in_camera``: scale and
pose applied, camera optical frame, metres) through the scene's pinhole camera matrix K, fills its
silhouette with a translucent colour of its own, outlines it in the same colour and writes
``<id>: <label> <score>`` above it. Colours come from a fixed palette of well-separated hues, one
per object in scene order (two chairs get two colours). Nearer objects are painted over farther
ones (by the depth of their centre). Pixels outside every silhouette and label keep the input's
value exactly. Lens distortion is ignored (the silhouette is the pinhole projection), and
triangles with a vertex closer than ``NEAR_M`` to the camera plane are left out.

``dpa-reconstruct`` writes the result as ``DIR/preview.png`` (:func:`write_preview`); the ROS node
publishes it on ``~/overlay``. :func:`draw_status` outlines objects in colours the caller picks
(``dpa-sim-check``'s ``stability.png``: green stable, red unstable). No ROS, numpy, scipy and
Pillow only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.fileio import atomic_write
from dpa_ros.core.scene import Scene, SceneObject

# Sasha Trubetskoy's "20 simple, distinct colours" (first 12): distinguishable from one another,
# and from most photographs' content, at a glance.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (255, 225, 25), (170, 110, 40),
)
NEAR_M = 1e-3  # triangles with a vertex nearer than this (z in metres) are not drawn
DEFAULT_ALPHA = 0.45
PREVIEW_PNG = "preview.png"


def object_colour(index: int) -> tuple[int, int, int]:
    """RGB (0-255) of the ``index``-th object of a scene (the palette repeats after 12)."""
    return PALETTE[index % len(PALETTE)]


def silhouette(obj: SceneObject, camera: CameraModel) -> np.ndarray:
    """(height, width) bool mask of the pixels the object's placed mesh covers in the image.

    Every triangle is projected with ``camera.K`` and filled; triangles with a vertex at
    ``z < NEAR_M`` (on or behind the camera plane) are skipped.
    """
    placed = obj.mesh_in_camera()
    verts = np.asarray(placed.vertices, dtype=np.float64)
    faces = np.asarray(placed.faces, dtype=np.int64).reshape(-1, 3)
    canvas = Image.new("L", (camera.width, camera.height), 0)
    if len(faces) and len(verts):
        in_front = np.all(verts[faces][:, :, 2] >= NEAR_M, axis=1)
        faces = faces[in_front]
        uv = np.full((len(verts), 2), np.nan)
        front = verts[:, 2] >= NEAR_M
        uv[front] = camera.project(verts[front])
        tri = uv[faces]  # (F, 3, 2)
        # only triangles that overlap the image (with a margin, so huge ones near the camera still fill)
        lo, hi = tri.min(axis=1), tri.max(axis=1)
        visible = (hi[:, 0] >= -1) & (hi[:, 1] >= -1) & (lo[:, 0] <= camera.width) & (lo[:, 1] <= camera.height)
        visible &= np.all(np.abs(tri) < 1e7, axis=(1, 2))
        draw = ImageDraw.Draw(canvas)
        for t in tri[visible].tolist():
            draw.polygon([tuple(p) for p in t], fill=255)
    return np.asarray(canvas) > 0


def _font(height_px: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=height_px)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _label_text(obj: SceneObject) -> str:
    return f"{obj.id}: {obj.label} {float(obj.score):.2f}"


def draw_overlay(rgb: np.ndarray, scene: Scene, alpha: float = DEFAULT_ALPHA, labels: bool = True) -> np.ndarray:
    """The input image with every object of ``scene`` drawn over it (see the module docstring).

    Args:
        rgb: (H, W, 3) uint8 RGB image the scene was reconstructed from; H, W must equal
            ``scene.camera.height``, ``scene.camera.width``.
        scene: poses in the camera optical frame of ``scene.camera``.
        alpha: opacity of the silhouette fill in [0, 1] (outline and label are opaque).
        labels: write ``<id>: <label> <score>`` above each visible object.

    Returns:
        A new (H, W, 3) uint8 RGB array; ``rgb`` is not modified.

    Raises:
        ValueError: the image is not (H, W, 3) uint8 of the camera's size, or alpha is outside [0, 1].
    """
    image = np.asarray(rgb)
    cam = scene.camera
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"overlay needs an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    if image.shape[:2] != (cam.height, cam.width):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but the scene's camera is "
                         f"{cam.width}x{cam.height}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    weight = int(round(alpha * 256))  # fill blend in 8-bit fixed point: (in * (256 - w) + colour * w) / 256
    thickness = max(1, round(min(cam.width, cam.height) / 240))
    result = image.copy()
    # far to near, so that nearer objects cover farther ones
    order = sorted(range(len(scene.objects)), key=lambda i: -float(scene.objects[i].translation[2]))
    boxes: dict[int, tuple[int, int, int, int]] = {}
    for i in order:
        mask = silhouette(scene.objects[i], cam)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not rows.size:
            continue
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        inside = mask[y0:y1, x0:x1]  # work on the silhouette's bounding box only
        region = result[y0:y1, x0:x1]
        colour = np.array(object_colour(i), dtype=np.uint16)
        painted = ((region.astype(np.uint16) * (256 - weight) + colour * weight + 128) >> 8).astype(np.uint8)
        edge = inside & ~ndimage.binary_erosion(inside, iterations=thickness, border_value=0)
        painted[edge] = colour
        region[...] = np.where(inside[..., None], painted, region)
        boxes[i] = (x0, y0, x1 - 1, y1 - 1)
    if labels and boxes:
        result = _draw_labels(result, scene, boxes)
    return result


def draw_status(rgb: np.ndarray, scene: Scene, colours: dict[int, tuple[int, int, int]],
                texts: dict[int, str] | None = None) -> np.ndarray:
    """``rgb`` with the silhouette of each object whose id is in ``colours`` outlined (opaque,
    about 1/120 of the image's short side thick) in that RGB colour, and ``texts[id]`` written
    on a box of the same colour above it. ``rgb``: (H, W, 3) uint8 of the camera's size; returns
    a new array."""
    image = np.asarray(rgb)
    cam = scene.camera
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[:2] != (cam.height, cam.width):
        raise ValueError(f"status image must be ({cam.height}, {cam.width}, 3) uint8, got {image.dtype} {image.shape}")
    result = image.copy()
    thickness = max(2, round(min(cam.width, cam.height) / 120))
    font = _font(max(10, round(min(cam.width, cam.height) / 30)))
    labels = []
    for obj in scene.objects:
        if obj.id not in colours:
            continue
        mask = silhouette(obj, cam)
        if not mask.any():
            continue
        edge = mask & ~ndimage.binary_erosion(mask, iterations=thickness, border_value=0)
        result[edge] = colours[obj.id]
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        labels.append((obj.id, int(cols[0]), int(rows[0])))
    if texts:
        canvas = Image.fromarray(result)
        draw = ImageDraw.Draw(canvas)
        placed: list[tuple[int, int, int, int]] = []
        h, w = result.shape[:2]
        for obj_id, x0, y0 in labels:
            if obj_id not in texts:
                continue
            left, top, right, bottom = draw.textbbox((0, 0), texts[obj_id], font=font)
            tw, th = right - left + 4, bottom - top + 4
            bx = min(max(x0, 0), max(w - tw, 0))
            by = _free_row(max(y0 - th - 1, 0), bx, tw, th, h, placed)
            placed.append((bx, by, bx + tw, by + th))
            draw.rectangle((bx, by, bx + tw - 1, by + th - 1), fill=colours[obj_id])
            draw.text((bx + 2 - left, by + 2 - top), texts[obj_id], font=font, fill=(255, 255, 255))
        result = np.asarray(canvas)
    return result


def _free_row(row: int, x: int, width: int, height: int, image_height: int,
              placed: list[tuple[int, int, int, int]]) -> int:
    """The top row nearest to ``row`` where a ``width`` x ``height`` box at column ``x`` overlaps
    none of the ``placed`` boxes (x0, y0, x1, y1; exclusive ends) and fits in the image."""
    def free(y: int) -> bool:
        return 0 <= y <= image_height - height and not any(
            x < x1 and x0 < x + width and y < y1 and y0 < y + height for x0, y0, x1, y1 in placed)

    candidates = [row] + [y0 - height - 1 for _, y0, _, _ in placed] + [y1 + 1 for _, _, _, y1 in placed]
    fitting = [y for y in candidates if free(y)]
    return min(fitting, key=lambda y: (abs(y - row), y)) if fitting else row


def _draw_labels(image: np.ndarray, scene: Scene, boxes: dict[int, tuple[int, int, int, int]]) -> np.ndarray:
    """Each label on a filled box of its object's colour, just above the silhouette's bounding box
    (inside the image; below the top edge when there is no room above; moved to the nearest free
    row when it would cover a label already drawn)."""
    h, w = image.shape[:2]
    font = _font(max(10, round(min(w, h) / 30)))
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    pad = 2
    placed: list[tuple[int, int, int, int]] = []
    for i, (x0, y0, _x1, _y1) in sorted(boxes.items()):
        text = _label_text(scene.objects[i])
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        bx = min(max(x0, 0), max(w - tw, 0))
        by = y0 - th - 1 if y0 - th - 1 >= 0 else min(y0 + 1, max(h - th, 0))
        by = _free_row(by, bx, tw, th, h, placed)
        placed.append((bx, by, bx + tw, by + th))
        colour = object_colour(i)
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        draw.rectangle((bx, by, bx + tw - 1, by + th - 1), fill=colour)
        draw.text((bx + pad - left, by + pad - top), text, font=font, fill=ink)
    return np.asarray(canvas)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as a PNG at ``path`` (atomically); return the path."""
    return atomic_write(Path(path), lambda p: Image.fromarray(np.asarray(rgb, np.uint8)).save(p, format="PNG"))


def write_preview(path: str | Path, rgb: np.ndarray, scene: Scene, alpha: float = DEFAULT_ALPHA) -> Path:
    """Write :func:`draw_overlay` of ``rgb`` and ``scene`` as a PNG at ``path`` (atomically); return it."""
    return write_png(path, draw_overlay(rgb, scene, alpha=alpha))
