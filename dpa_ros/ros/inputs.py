"""The chosen input frame's messages → the pipeline's inputs, validated (:func:`frame_from_messages`).

Only the frame a request chose (:class:`dpa_ros.ros.frame_buffer.FrameSet`) is converted; every
problem raises :class:`InputError` whose text is a one-line reason for the requester.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from dpa_ros.core.camera import CameraModel
from dpa_ros.ros import conversions as conv
from dpa_ros.ros.conversions import ConversionError
from dpa_ros.ros.frame_buffer import FrameSet


class InputError(ValueError):
    """A request's input frame is unusable; ``str(err)`` is the reason."""


@dataclass
class Frame:
    """One converted input frame, ready for :meth:`dpa_ros.pipeline.Pipeline.run`.

    ``rgb`` (H, W, 3) uint8; ``depth`` (H, W) float32 metres with NaN where invalid, or None;
    ``camera`` in the image's optical frame ``frame_id``; ``source`` the topic kind the image came
    from (``image`` or ``image/compressed``); ``notes`` are told to the requester.
    """

    stamp_ns: int
    frame_id: str
    rgb: np.ndarray
    camera: CameraModel
    depth: np.ndarray | None
    source: str
    notes: list[str] = field(default_factory=list)


def processed_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """(width, height) in px of a ``width`` × ``height`` image after :func:`downscale` to ``max_size``."""
    if max_size <= 0 or max(height, width) <= max_size:
        return width, height
    factor = max_size / max(height, width)
    return max(1, round(width * factor)), max(1, round(height * factor))


def downscale(rgb: np.ndarray, depth: np.ndarray | None, camera: CameraModel,
              max_size: int) -> tuple[np.ndarray, np.ndarray | None, CameraModel]:
    """(rgb, depth, camera) with the long side at most ``max_size`` px (0: unchanged).

    The image is area-averaged; depth (metres, NaN invalid) takes the nearest source pixel, so no
    depth is interpolated across an object's edge and invalid pixels stay NaN; ``K`` is scaled by the
    same factors per axis (pixel centres kept: c' = (c + 0.5) * s - 0.5).
    """
    h, w = rgb.shape[:2]
    new_w, new_h = processed_size(w, h, max_size)
    if (new_w, new_h) == (w, h):
        return rgb, depth, camera
    sx, sy = new_w / w, new_h / h
    rgb = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    if depth is not None:
        depth = cv2.resize(depth, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    K = camera.K.copy()
    K[0, 0], K[0, 1], K[1, 1] = K[0, 0] * sx, K[0, 1] * sx, K[1, 1] * sy
    K[0, 2], K[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
    return rgb, depth, replace(camera, K=K, width=new_w, height=new_h)


def frame_from_messages(chosen: FrameSet, intrinsics: str = "auto", max_image_size: int = 0,
                        distortion: str = "rectify") -> Frame:
    """Convert and cross-check a chosen set whose image payload is ``(source, Image | CompressedImage)``
    and whose camera_info / depth payloads are the messages; a frame whose long side exceeds
    ``max_image_size`` (px, 0 = any) is downscaled to it (:func:`downscale`). Raises :class:`InputError`.

    A camera_info with lens distortion (and ``intrinsics`` not ``p``, which says the image is
    already rectified) is handled by ``distortion``: ``rectify`` remaps image and depth to the
    pinhole camera P with OpenCV (:func:`dpa_ros.geometry.rectify.rectify_frame`), ``refuse``
    refuses the request with the reason, ``ignore`` uses K as if the image were pinhole (noted).
    """
    source, img = chosen.image.payload
    info = chosen.camera_info.payload
    try:
        rgb = conv.image_to_rgb(img) if source == "image" else conv.compressed_to_rgb(img)
    except ConversionError as exc:
        raise InputError(f"bad image on {source}: {exc}") from exc
    frame_id = img.header.frame_id or info.header.frame_id
    if not frame_id:
        raise InputError("image and camera_info both have an empty header.frame_id")
    try:
        camera = conv.camera_model_from_info(info, intrinsics, frame_id=frame_id)
    except ConversionError as exc:
        raise InputError(f"bad camera_info: {exc}") from exc
    h, w = rgb.shape[:2]
    if (camera.width, camera.height) != (w, h):
        raise InputError(f"camera_info is {camera.width}x{camera.height} but the image is {w}x{h}")
    notes = list(chosen.notes)
    depth = None
    if chosen.depth is not None:
        try:
            depth = conv.depth_to_metres(chosen.depth.payload)
        except ConversionError as exc:
            raise InputError(f"bad depth image: {exc}") from exc
        if depth.shape != (h, w):
            raise InputError(f"depth image is {depth.shape[1]}x{depth.shape[0]} but the colour image is "
                             f"{w}x{h} (depth must be aligned to the colour image)")
        if not np.isfinite(depth).any():
            raise InputError("depth image has no valid pixel (all NaN, zero, negative or infinite)")
    if camera.is_distorted:
        if distortion == "ignore":
            notes.append("distortion coefficients ignored (pinhole model; use a rectified image with intrinsics: p)")
        else:
            rgb, depth, camera = _rectified(info, frame_id, rgb, depth, distortion, notes)
    if max_image_size > 0 and max(h, w) > max_image_size:
        rgb, depth, camera = downscale(rgb, depth, camera, max_image_size)
    return Frame(stamp_ns=chosen.image.stamp_ns, frame_id=frame_id, rgb=rgb, camera=camera, depth=depth,
                 source=source, notes=notes)


def _rectified(info, frame_id: str, rgb: np.ndarray, depth: np.ndarray | None, policy: str,
               notes: list[str]) -> tuple[np.ndarray, np.ndarray | None, CameraModel]:
    """The frame remapped to camera_info's pinhole camera P (``policy`` rectify), or InputError."""
    from dpa_ros.geometry.rectify import CameraInfo, RectificationError, rectify_frame

    P = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
    R = np.asarray(info.r, dtype=np.float64).reshape(3, 3)
    calibration = CameraInfo(width=int(info.width), height=int(info.height),
                             K=np.asarray(info.k, dtype=np.float64).reshape(3, 3),
                             D=tuple(float(c) for c in info.d), distortion_model=info.distortion_model or "plumb_bob",
                             R=R if np.any(R) else np.eye(3), P=P if np.any(P[:, :3]) else None, frame_id=frame_id)
    try:
        rgb, depth, camera, note = rectify_frame(calibration, rgb, depth, policy)
    except RectificationError as exc:
        raise InputError(f"camera_info with lens distortion: {exc}") from exc
    notes.append(note)
    return rgb, depth, camera
