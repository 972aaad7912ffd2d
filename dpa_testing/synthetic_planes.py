"""Analytic rooms of flat rectangles seen by a pitched, rolled RGB-D camera with stereo depth noise.

For the plane-fitting tests and bench (:mod:`dpa_ros.geometry.planes`): a floor, an optional table
top (a rectangle, not an instance) and walls, ray-cast exactly per pixel, then corrupted as an
active-stereo sensor (RealSense D435-like) corrupts depth: disparity noise (so depth noise grows
with z²), disparity and millimetre quantisation, flying pixels at depth edges, random outliers and
holes.

Frames: the world is z-up with the floor at z = 0, x to the camera's right and y forward, as in
:func:`dpa_testing.synthetic.look_at_level`; points and planes returned are in the camera
optical frame (x right, y down, z forward), metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpa_ros.core.camera import CameraModel
from dpa_testing.synthetic import look_at_level


@dataclass(frozen=True)
class Rectangle:
    """A world rectangle ``origin + a·axis_a + b·axis_b``, 0 ≤ a ≤ len_a, 0 ≤ b ≤ len_b (metres)."""

    name: str
    origin: tuple[float, float, float]
    axis_a: tuple[float, float, float]
    axis_b: tuple[float, float, float]
    len_a: float
    len_b: float

    def corners(self) -> np.ndarray:
        """(4, 3) world corners in order around the rectangle."""
        o, a, b = (np.asarray(v, float) for v in (self.origin, self.axis_a, self.axis_b))
        return np.stack([o, o + self.len_a * a, o + self.len_a * a + self.len_b * b, o + self.len_b * b])


@dataclass(frozen=True)
class StereoSensor:
    """Active-stereo depth noise: σ_z = z² · disparity_std / (focal · baseline).

    Attributes:
        baseline_m: stereo baseline, metres.
        disparity_std_px: disparity noise, pixels (the focal length is the camera's fx).
        disparity_step_px: disparity quantisation step, pixels (sub-pixel interpolation).
        depth_step_m: output depth quantisation (a 16-bit millimetre image).
        outlier_fraction: share of pixels given a uniform random depth in [0.3 m, true depth].
        flying_fraction: share of depth-edge pixels given a depth between their two sides.
        hole_fraction: share of pixels with no depth (NaN).
    """

    baseline_m: float = 0.05
    disparity_std_px: float = 0.08
    disparity_step_px: float = 1.0 / 16.0
    depth_step_m: float = 0.001
    outlier_fraction: float = 0.02
    flying_fraction: float = 0.5
    hole_fraction: float = 0.02

    def depth_noise(self, focal_px: float) -> float:
        """σ_z / z² of this sensor on a camera of focal length ``focal_px``, 1/m."""
        return self.disparity_std_px / (focal_px * self.baseline_m)

    def corrupt(self, depth: np.ndarray, focal_px: float, rng: np.random.Generator) -> np.ndarray:
        """``depth`` (H, W, metres, NaN where nothing) as this sensor would measure it."""
        fb = focal_px * self.baseline_m
        disparity = fb / depth + rng.normal(0.0, self.disparity_std_px, depth.shape)
        disparity = np.round(disparity / self.disparity_step_px) * self.disparity_step_px
        out = np.where(disparity > 0, fb / np.where(disparity > 0, disparity, 1.0), np.nan)
        out[~np.isfinite(depth)] = np.nan
        # Flying pixels: where a neighbour is more than 5 cm away, a blend of the two sides.
        right = np.roll(depth, -1, axis=1)
        edge = np.abs(right - depth) > 0.05
        edge[:, -1] = False
        flying = edge & (rng.random(depth.shape) < self.flying_fraction) & np.isfinite(right)
        t = rng.random(depth.shape)
        out[flying] = (t * depth + (1 - t) * right)[flying]
        outlier = (rng.random(depth.shape) < self.outlier_fraction) & np.isfinite(out)
        out[outlier] = rng.uniform(0.3, 1.0, depth.shape)[outlier] * np.maximum(out[outlier], 0.3)
        out[rng.random(depth.shape) < self.hole_fraction] = np.nan
        return np.round(out / self.depth_step_m) * self.depth_step_m


@dataclass
class PlaneScene:
    """A rendered room of rectangles.

    Attributes:
        camera: the pinhole camera.
        T_camera_world: 4×4 world → optical frame.
        rectangles: what was rendered (world frame).
        depth: (H, W) measured z-depth, metres, NaN where none.
        true_depth: (H, W) exact z-depth, metres, NaN where none.
        ids: (H, W) index into ``rectangles`` of the surface each pixel sees, -1 where none.
        gravity: unit down vector, optical frame.
        depth_noise: the sensor's σ_z / z² on this camera, 1/m.
    """

    camera: CameraModel
    T_camera_world: np.ndarray
    rectangles: list[Rectangle]
    depth: np.ndarray
    true_depth: np.ndarray
    ids: np.ndarray
    gravity: np.ndarray
    depth_noise: float

    def plane(self, name: str) -> tuple[np.ndarray, float]:
        """The named rectangle's plane in the optical frame: (unit normal towards the camera, d > 0)."""
        rect = next(r for r in self.rectangles if r.name == name)
        corners = self.to_camera(rect.corners())
        n = np.cross(corners[1] - corners[0], corners[3] - corners[0])
        n /= np.linalg.norm(n)
        d = -float(n @ corners[0])
        return (n, d) if d > 0 else (-n, -d)

    def to_camera(self, world: np.ndarray) -> np.ndarray:
        """World points (N, 3) in the optical frame."""
        return np.asarray(world, float) @ self.T_camera_world[:3, :3].T + self.T_camera_world[:3, 3]

    def points(self, which: str = "depth") -> np.ndarray:
        """All measured (``"depth"``) or exact (``"true_depth"``) points, (N, 3) optical frame."""
        return self.camera.backproject(getattr(self, which))


def camera_pose(height: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """T_camera_world of a camera ``height`` m above the floor, pitched down ``pitch_deg`` and rolled
    ``roll_deg`` about its optical axis."""
    T = look_at_level(height, pitch_deg)
    r = np.radians(roll_deg)
    Rz = np.array([[np.cos(r), -np.sin(r), 0.0], [np.sin(r), np.cos(r), 0.0], [0.0, 0.0, 1.0]])
    T[:3, :3] = Rz @ T[:3, :3]
    T[:3, 3] = Rz @ T[:3, 3]
    return T


def room(table: tuple[float, float, float, float, float] | None = None, back_wall_y: float | None = 4.0,
         side_wall_x: float | None = -2.0) -> list[Rectangle]:
    """A floor (12 × 12 m), an optional table top ``(x_centre, y_centre, height, width, depth)``
    (metres, world frame), a back wall at y = ``back_wall_y`` facing the camera and a side wall at
    x = ``side_wall_x`` (left of the camera), each 3 m high; None leaves one out."""
    rects = [Rectangle("floor", (-6.0, -6.0, 0.0), (1, 0, 0), (0, 1, 0), 12.0, 12.0)]
    if table is not None:
        x, y, h, w, dep = table
        rects.append(Rectangle("table", (x - w / 2, y - dep / 2, h), (1, 0, 0), (0, 1, 0), w, dep))
    if back_wall_y is not None:
        rects.append(Rectangle("back_wall", (-6.0, back_wall_y, 0.0), (1, 0, 0), (0, 0, 1), 12.0, 3.0))
    if side_wall_x is not None:
        rects.append(Rectangle("side_wall", (side_wall_x, -6.0, 0.0), (0, 1, 0), (0, 0, 1), 12.0, 3.0))
    return rects


def render_planes(rectangles: list[Rectangle], T_camera_world: np.ndarray, camera: CameraModel | None = None,
                  sensor: StereoSensor | None = None, seed: int = 0) -> PlaneScene:
    """Ray-cast ``rectangles`` from the camera (default 640 × 480, fx ≈ 380 px) and corrupt the depth
    with ``sensor`` (default :class:`StereoSensor`; its noise drawn with ``seed``)."""
    camera = camera or CameraModel.from_fov(640, 480, 2 * np.degrees(np.arctan(320 / 380)))
    sensor = sensor or StereoSensor()
    u, v = camera.pixel_grid()
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1)
    R_wc = T_camera_world[:3, :3].T
    centre_w = -R_wc @ T_camera_world[:3, 3]
    rays_w = rays @ R_wc.T                              # world direction per pixel, z-depth 1
    depth = np.full(u.shape, np.inf)
    ids = np.full(u.shape, -1, np.int64)
    for k, rect in enumerate(rectangles):
        o, a, b = (np.asarray(x, float) for x in (rect.origin, rect.axis_a, rect.axis_b))
        n = np.cross(a, b)
        denom = rays_w @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (n @ (o - centre_w)) / denom
        hit = centre_w + t[..., None] * rays_w - o
        sa, sb = hit @ a, hit @ b
        inside = (np.abs(denom) > 1e-12) & (t > 0.05) & (sa >= 0) & (sa <= rect.len_a) & (sb >= 0) & (sb <= rect.len_b)
        closer = inside & (t < depth)
        depth[closer] = t[closer]
        ids[closer] = k
    depth[~np.isfinite(depth)] = np.nan
    rng = np.random.default_rng(seed)
    measured = sensor.corrupt(depth, camera.fx, rng)
    gravity = T_camera_world[:3, :3] @ np.array([0.0, 0.0, -1.0])
    return PlaneScene(camera=camera, T_camera_world=T_camera_world, rectangles=list(rectangles), depth=measured,
                      true_depth=depth, ids=ids, gravity=gravity, depth_noise=sensor.depth_noise(camera.fx))
