"""Pinhole camera model in the optical frame (REP 103), built from ROS camera_info data."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml


class CameraInfoError(ValueError):
    """A camera description that cannot be used (bad shape, non-positive focal length ...)."""


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of an undistorted pinhole camera.

    Attributes:
        K: 3×3 intrinsic matrix (pixels).
        width, height: image size in pixels.
        frame_id: the optical frame the image is expressed in.
        distortion: plumb_bob/rational coefficients as given; the model ignores them, so images
            must be rectified first (use the ``P`` matrix of a rectified camera_info). Kept so a
            caller can check ``is_distorted`` and warn.
    """

    K: np.ndarray
    width: int
    height: int
    frame_id: str = "camera_optical_frame"
    distortion: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        object.__setattr__(self, "K", K)
        if self.width <= 0 or self.height <= 0:
            raise CameraInfoError(f"camera size must be positive, got {self.width}x{self.height}")
        if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CameraInfoError(f"camera K needs positive finite focal lengths, got {K.ravel().tolist()}")

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def is_distorted(self) -> bool:
        return any(abs(c) > 1e-12 for c in self.distortion)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float,
                 frame_id: str = "camera_optical_frame") -> "CameraModel":
        """A centred camera with square pixels and the given horizontal field of view (degrees)."""
        f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
        K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
        return cls(K=K, width=width, height=height, frame_id=frame_id)

    @classmethod
    def from_camera_info_dict(cls, data: dict, frame_id: str | None = None) -> "CameraModel":
        """Parse the ROS camera_info YAML layout (camera_calibration_parsers).

        Uses ``camera_matrix``; ``distortion_coefficients`` are recorded, not applied.
        """
        try:
            width = int(data["image_width"])
            height = int(data["image_height"])
            K = np.asarray(data["camera_matrix"]["data"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise CameraInfoError(f"camera_info is missing image_width/image_height/camera_matrix: {exc}") from exc
        if K.size != 9:
            raise CameraInfoError(f"camera_matrix must have 9 values, got {K.size}")
        dist = tuple(float(c) for c in (data.get("distortion_coefficients") or {}).get("data", []) or [])
        frame = frame_id or data.get("frame_id") or data.get("camera_name") or "camera_optical_frame"
        return cls(K=K.reshape(3, 3), width=width, height=height, frame_id=str(frame), distortion=dist)

    @classmethod
    def from_yaml(cls, path: str | Path, frame_id: str | None = None) -> "CameraModel":
        """Read a ROS camera_info YAML file."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CameraInfoError(f"cannot read camera_info YAML {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise CameraInfoError(f"{path} is not a camera_info YAML mapping")
        return cls.from_camera_info_dict(data, frame_id=frame_id)

    def to_camera_info_dict(self) -> dict:
        """The ROS camera_info YAML layout of this camera (no distortion, identity R, P = [K|0])."""
        P = np.zeros((3, 4))
        P[:, :3] = self.K
        return {
            "image_width": self.width,
            "image_height": self.height,
            "camera_name": self.frame_id,
            "camera_matrix": {"rows": 3, "cols": 3, "data": self.K.ravel().tolist()},
            "distortion_model": "plumb_bob",
            "distortion_coefficients": {"rows": 1, "cols": 5, "data": list(self.distortion) or [0.0] * 5},
            "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).ravel().tolist()},
            "projection_matrix": {"rows": 3, "cols": 4, "data": P.ravel().tolist()},
        }

    def pixel_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) pixel coordinate arrays of shape (height, width)."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        return u.astype(np.float64), v.astype(np.float64)

    def backproject(self, depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Points (N, 3) in the optical frame from a z-depth map (metres, shape height×width).

        Pixels with non-finite or non-positive depth are dropped; ``mask`` (bool, same shape)
        selects pixels further. Row-major pixel order is kept.
        """
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != (self.height, self.width):
            raise ValueError(f"depth shape {depth.shape} does not match camera {self.height}x{self.width}")
        valid = np.isfinite(depth) & (depth > 0)
        if mask is not None:
            valid &= np.asarray(mask, dtype=bool)
        v, u = np.nonzero(valid)
        z = depth[v, u]
        x = (u - self.cx) * z / self.fx
        y = (v - self.cy) * z / self.fy
        return np.stack([x, y, z], axis=1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) = (u, v) of optical-frame points (N, 3); z must be > 0."""
        points = np.asarray(points, dtype=np.float64)
        z = points[:, 2]
        u = self.fx * points[:, 0] / z + self.cx
        v = self.fy * points[:, 1] / z + self.cy
        return np.stack([u, v], axis=1)
