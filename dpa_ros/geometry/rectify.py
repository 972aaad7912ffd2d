"""Undistort an image (and its aligned depth) with the full ROS camera_info model, or refuse it.

The layout and every projection in dpa_ros use a pinhole camera (:class:`CameraModel`, K only).
An image with lens distortion must be rectified first, else every object is mislocated; this module
does what ROS's image_proc does for ``image_rect``: it remaps the image with OpenCV's
``initUndistortRectifyMap(K, D, R, P)`` (``cv2.fisheye`` for the ``equidistant`` model), after which
the image is a pinhole image whose camera matrix is the left 3×3 of P (K when P is absent or zero).

Pixel coordinates follow OpenCV / ROS (pixel centres at integer coordinates); the depth image must
be aligned to the colour image's pixel grid and is resampled with its nearest valid neighbour
(interpolating across a depth edge would invent surfaces), in its own units.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dpa_ros.core.camera import CameraModel

#: ROS camera_info distortion models this module can undo.
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
FISHEYE_MODELS = ("equidistant",)
DISTORTION_POLICIES = ("rectify", "refuse")


class RectificationError(ValueError):
    """A camera_info that cannot be used as asked (distorted and refused, unknown model, bad matrices)."""


@dataclass(frozen=True)
class CameraInfo:
    """The full calibration of a ROS camera_info YAML (camera_calibration_parsers' layout).

    K: 3×3 camera matrix of the raw image (pixels); D: distortion coefficients; R: 3×3 rectification
    rotation; P: 3×4 projection matrix of the rectified image (pixels), or None when absent or zero.
    """

    width: int
    height: int
    K: np.ndarray
    D: tuple[float, ...]
    distortion_model: str
    R: np.ndarray
    P: np.ndarray | None
    frame_id: str

    @property
    def is_distorted(self) -> bool:
        return any(abs(c) > 1e-12 for c in self.D)

    @property
    def rectified_K(self) -> np.ndarray:
        """The pinhole camera matrix of the rectified image: P's left 3×3, else K."""
        return (self.P[:, :3] if self.P is not None else self.K).astype(np.float64)

    def rectified_camera(self) -> CameraModel:
        return CameraModel(K=self.rectified_K, width=self.width, height=self.height, frame_id=self.frame_id)

    @classmethod
    def from_dict(cls, data: dict, source: str = "camera_info") -> "CameraInfo":
        def matrix(key: str, shape: tuple[int, int], required: bool) -> np.ndarray | None:
            values = (data.get(key) or {}).get("data") if isinstance(data.get(key), dict) else None
            if values is None:
                if required:
                    raise RectificationError(f"{source}: '{key}' is missing")
                return None
            m = np.asarray(values, dtype=np.float64)
            if m.size != shape[0] * shape[1] or not np.isfinite(m).all():
                raise RectificationError(f"{source}: '{key}' must hold {shape[0] * shape[1]} finite numbers")
            return m.reshape(shape)

        try:
            width, height = int(data["image_width"]), int(data["image_height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RectificationError(f"{source}: image_width and image_height are required") from exc
        K = matrix("camera_matrix", (3, 3), True)
        R = matrix("rectification_matrix", (3, 3), False)
        P = matrix("projection_matrix", (3, 4), False)
        if P is not None and not np.any(P[:, :3]):
            P = None
        D = tuple(float(c) for c in ((data.get("distortion_coefficients") or {}).get("data") or []))
        return cls(width=width, height=height, K=K, D=D, R=np.eye(3) if R is None or not np.any(R) else R, P=P,
                   distortion_model=str(data.get("distortion_model") or "plumb_bob"),
                   frame_id=str(data.get("frame_id") or data.get("camera_name") or "camera_optical_frame"))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CameraInfo":
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RectificationError(f"cannot read camera_info {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise RectificationError(f"camera_info {path} must be a YAML mapping")
        return cls.from_dict(data, source=f"camera_info {path}")


def undistort_maps(info: CameraInfo) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y), each (H, W) float32: the raw-image pixel each rectified pixel samples."""
    import cv2

    size = (info.width, info.height)
    D = np.asarray(info.D, dtype=np.float64)
    if info.distortion_model in PINHOLE_MODELS:
        if D.size not in (4, 5, 8, 12, 14):
            raise RectificationError(f"{info.distortion_model}: {D.size} distortion coefficients; OpenCV takes "
                                     "4, 5, 8, 12 or 14")
        return cv2.initUndistortRectifyMap(info.K, D, info.R, info.rectified_K, size, cv2.CV_32FC1)
    if info.distortion_model in FISHEYE_MODELS:
        if D.size != 4:
            raise RectificationError(f"equidistant: expected 4 distortion coefficients, got {D.size}")
        return cv2.fisheye.initUndistortRectifyMap(info.K, D.reshape(4, 1), info.R, info.rectified_K, size,
                                                   cv2.CV_32FC1)
    raise RectificationError(f"distortion model '{info.distortion_model}' cannot be undone here (supported: "
                             f"{', '.join(PINHOLE_MODELS + FISHEYE_MODELS)}); rectify the image yourself")


def rectify_frame(info: CameraInfo, image: np.ndarray, depth: np.ndarray | None = None,
                  policy: str = "rectify") -> tuple[np.ndarray, np.ndarray | None, CameraModel, str]:
    """A pinhole frame from a raw one: (image, depth, camera, note).

    Without distortion the frame is returned as it is with the camera matrix P[:3, :3] (K when P
    is absent). With distortion, ``policy`` ``"rectify"`` remaps the image (bilinear) and the
    aligned depth (nearest; NaN where the raw image has no pixel); ``"refuse"`` raises
    :class:`RectificationError` naming the coefficients and what to do instead. ``note`` says
    what was done, for the log.
    """
    if policy not in DISTORTION_POLICIES:
        raise RectificationError(f"distortion policy must be one of {', '.join(DISTORTION_POLICIES)}, got {policy!r}")
    if image.shape[:2] != (info.height, info.width):
        raise RectificationError(f"image is {image.shape[1]}x{image.shape[0]} but camera_info says "
                                 f"{info.width}x{info.height}")
    if depth is not None and depth.shape[:2] != image.shape[:2]:
        raise RectificationError(f"depth is {depth.shape[1]}x{depth.shape[0]}, the image {image.shape[1]}x"
                                 f"{image.shape[0]}: depth must be aligned to the image")
    if not info.is_distorted:
        return image, depth, info.rectified_camera(), "camera_info has no distortion: image used as it is"
    coefficients = ", ".join(f"{c:.4g}" for c in info.D)
    if policy == "refuse":
        raise RectificationError(
            f"camera_info has lens distortion ({info.distortion_model}: {coefficients}) and the pipeline assumes a "
            "pinhole image: pass a rectified image (ROS: image_rect from image_proc) with a camera_info without "
            "distortion, or let dpa-reconstruct rectify it (--distortion rectify)")
    import cv2

    map_x, map_y = undistort_maps(info)
    rectified = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out_depth = None
    if depth is not None:
        raw = np.asarray(depth, dtype=np.float32)
        out_depth = cv2.remap(raw, map_x, map_y, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=float("nan")).astype(np.float64)
        outside = (map_x < -0.5) | (map_y < -0.5) | (map_x > info.width - 0.5) | (map_y > info.height - 0.5)
        out_depth[outside] = np.nan
    return rectified, out_depth, info.rectified_camera(), (
        f"rectified the image ({info.distortion_model}: {coefficients}) to the pinhole camera P")
