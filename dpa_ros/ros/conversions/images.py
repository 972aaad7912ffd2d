"""Images (raw and compressed), depth and camera_info <-> numpy / :class:`~dpa_ros.core.camera.CameraModel`.

Images (``sensor_msgs/Image``): rgb8, bgr8, rgba8, bgra8, mono8 (also 8UC1/8UC3/8UC4 read as
mono8/bgr8/bgra8, the OpenCV convention), 32FC1, 16UC1 (and mono16). ``step`` may include row
padding and ``is_bigendian`` is honoured for 16/32-bit data. ``cv_bridge`` is used for decoding when
it is importable (a full ROS install), after this module's own validation; otherwise the own
numpy decoder, which is the one tested here.

Depth: 32FC1 is metres; 16UC1 is millimetres (REP 118 / OpenNI); both come back as float32 metres
with invalid pixels (0, negative, NaN, inf) set to NaN.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from dpa_ros.core.camera import CameraInfoError, CameraModel

try:  # a full ROS install; the pip environment has neither
    from cv_bridge import CvBridge as _CvBridge  # type: ignore
except ImportError:  # pragma: no cover - depends on the installation
    _CvBridge = None

from dpa_ros.ros.conversions.stamps import ConversionError, make_header

# encoding -> (numpy dtype of one channel, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "8UC4")
DEPTH_ENCODINGS = ("32FC1", "16UC1", "mono16")


# ------------------------------------------------------------------------------------------- images
def _check_image(msg: Image) -> tuple[np.dtype, int]:
    """Validate an Image's geometry; return (channel dtype, channels)."""
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{msg.encoding}' "
                              f"(supported: {', '.join(ENCODINGS)})")
    if msg.height <= 0 or msg.width <= 0:
        raise ConversionError(f"image has zero size ({msg.width}x{msg.height})")
    dtype, channels = ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ConversionError(f"image step {msg.step} is smaller than width*pixel size {row_bytes} "
                              f"({msg.width} px of {msg.encoding})")
    if len(msg.data) != msg.step * msg.height:
        raise ConversionError(f"image data has {len(msg.data)} bytes but step*height = "
                              f"{msg.step}*{msg.height} = {msg.step * msg.height}")
    return dtype, channels


def image_to_numpy(msg: Image) -> np.ndarray:
    """The pixels of ``msg`` as an array in its own encoding's channel order, native byte order.

    Shape (H, W) for one channel, (H, W, C) otherwise; a fresh, C-contiguous array.
    Raises ConversionError for unknown encodings, zero size, or data/step/height mismatches.
    """
    dtype, channels = _check_image(msg)
    if _CvBridge is not None:  # pragma: no cover - only on a full ROS install
        try:
            arr = np.ascontiguousarray(_CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough"))
            return arr.copy()
        except Exception:  # fall back to the own decoder below
            pass
    buf = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    row_bytes = msg.width * channels * dtype.itemsize
    rows = buf[:, :row_bytes]
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    arr = np.ascontiguousarray(rows).view(wire).astype(dtype, copy=True)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return arr.reshape(shape)


def numpy_to_image(array: np.ndarray, encoding: str, frame_id: str = "", stamp: Time | int | None = None,
                   step: int | None = None, is_bigendian: bool = False) -> Image:
    """An Image from an array laid out for ``encoding`` (channel order is the caller's business).

    ``step`` larger than the row size pads each row with zero bytes; ``is_bigendian`` writes 16/32-bit
    data big-endian. Raises ConversionError when the array does not fit the encoding.
    """
    if encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{encoding}'")
    dtype, channels = ENCODINGS[encoding]
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ConversionError(f"array of shape {np.asarray(array).shape} does not fit {encoding} "
                              f"({channels} channel(s))")
    height, width = arr.shape[:2]
    wire = dtype.newbyteorder(">" if is_bigendian else "<") if dtype.itemsize > 1 else dtype
    rows = np.ascontiguousarray(arr.astype(wire)).view(np.uint8).reshape(height, width * channels * dtype.itemsize)
    row_bytes = rows.shape[1]
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ConversionError(f"step {step} is smaller than the row size {row_bytes}")
    if step > row_bytes:
        rows = np.concatenate([rows, np.zeros((height, step - row_bytes), np.uint8)], axis=1)
    msg = Image(header=make_header(frame_id, stamp), height=height, width=width, encoding=encoding,
                is_bigendian=int(bool(is_bigendian)), step=step)
    msg.data = rows.tobytes()
    return msg


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a colour or mono Image; raises ConversionError otherwise."""
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{msg.encoding}' "
                              f"(colour images: {', '.join(COLOR_ENCODINGS)})")
    if msg.encoding not in COLOR_ENCODINGS:
        raise ConversionError(f"image encoding '{msg.encoding}' is not a colour encoding "
                              f"({', '.join(COLOR_ENCODINGS)})")
    arr = image_to_numpy(msg)
    enc = msg.encoding
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if enc in ("rgb8", "rgba8"):
        return np.ascontiguousarray(arr[:, :, :3])
    return np.ascontiguousarray(arr[:, :, 2::-1])  # bgr8, bgra8, 8UC3, 8UC4


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB decoded from a CompressedImage (JPEG, PNG, ... via OpenCV)."""
    import cv2

    if "compresseddepth" in msg.format.lower().replace(" ", ""):
        raise ConversionError(f"compressed depth ('{msg.format}') is not a colour image")
    if len(msg.data) == 0:
        raise ConversionError("compressed image has no data")
    bgr = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ConversionError(f"compressed image ({msg.format or 'unknown format'}, {len(msg.data)} bytes) "
                              "cannot be decoded")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "png", frame_id: str = "",
                      stamp: Time | int | None = None) -> CompressedImage:
    """A CompressedImage (``png`` or ``jpeg``) of an RGB array, as image_transport would send it."""
    import cv2

    ext = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg"}[fmt]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, ::-1]))
    if not ok:
        raise ConversionError(f"cannot encode image as {fmt}")
    msg = CompressedImage(header=make_header(frame_id, stamp), format=f"rgb8; {fmt} compressed bgr8")
    msg.data = buf.tobytes()
    return msg


def depth_to_metres(msg: Image) -> np.ndarray:
    """(H, W) float32 depth in metres; invalid pixels (0, < 0, NaN, inf) become NaN.

    32FC1 is taken as metres, 16UC1/mono16 as millimetres (REP 118).
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ConversionError(f"unsupported depth encoding '{msg.encoding}' (use 32FC1 metres or 16UC1 mm)")
    arr = image_to_numpy(msg)
    if msg.encoding == "32FC1":
        depth = arr.astype(np.float32, copy=True)
    else:
        depth = arr.astype(np.float32) * np.float32(0.001)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


# ------------------------------------------------------------------------------------------ cameras
def camera_model_from_info(msg: CameraInfo, intrinsics: str = "auto", frame_id: str | None = None) -> CameraModel:
    """A :class:`CameraModel` from a CameraInfo.

    ``intrinsics`` chooses the matrix:

    - ``"k"``: ``K`` (the intrinsics of the raw, possibly distorted image; distortion is recorded but
      not applied, so the pipeline sees a pinhole camera);
    - ``"p"``: the left 3×3 of ``P``, the intrinsics of the *rectified* image (image_proc's
      ``image_rect``); falls back to ``K`` when ``P`` is all zero;
    - ``"auto"``: ``P`` when the distortion coefficients are all zero and ``P`` is set (the image is
      then already undistorted, as RGB-D drivers and rectified streams publish it, and ``P`` is what
      describes it), else ``K``.

    Raises ConversionError when the size is zero or the chosen matrix is missing/zero/invalid.
    """
    if intrinsics not in ("auto", "k", "p"):
        raise ConversionError(f"intrinsics must be auto, k or p, got '{intrinsics}'")
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"camera_info has zero size ({msg.width}x{msg.height}); is the camera calibrated?")
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)[:, :3]
    dist = tuple(float(c) for c in msg.d)
    p_valid = bool(np.any(P != 0)) and P[0, 0] > 0 and P[1, 1] > 0
    use_p = p_valid and (intrinsics == "p" or (intrinsics == "auto" and not any(dist)))
    M = P if use_p else K
    if not np.any(M != 0):
        raise ConversionError("camera_info K is all zero (uncalibrated camera)")
    try:
        return CameraModel(K=M, width=int(msg.width), height=int(msg.height),
                           frame_id=frame_id or msg.header.frame_id or "camera_optical_frame",
                           distortion=() if use_p else dist)
    except CameraInfoError as exc:
        raise ConversionError(f"camera_info is unusable: {exc}") from exc


def camera_info_from_model(camera: CameraModel, stamp: Time | int | None = None,
                           frame_id: str | None = None) -> CameraInfo:
    """A CameraInfo describing ``camera`` (plumb_bob, identity R, P = [K | 0])."""
    msg = CameraInfo(header=make_header(frame_id or camera.frame_id, stamp), width=camera.width,
                     height=camera.height, distortion_model="plumb_bob")
    msg.k = camera.K.ravel().tolist()
    msg.d = list(camera.distortion) or [0.0] * 5
    msg.r = np.eye(3).ravel().tolist()
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    msg.p = P.ravel().tolist()
    return msg
