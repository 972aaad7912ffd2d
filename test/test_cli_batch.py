"""dpa-reconstruct --images (a batch through the smoke profile's real code paths) and the camera
rectification of dpa_ros.geometry.rectify on a distorted camera_info."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from dpa_ros.cli import reconstruct
from dpa_ros.geometry.rectify import CameraInfo, RectificationError, rectify_frame

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "test" / "assets" / "coffee.png"
K = [260.0, 0.0, 149.5, 0.0, 260.0, 99.5, 0.0, 0.0, 1.0]
D = [-0.28, 0.09, 0.0005, -0.0004, 0.0]


def _camera_yaml(path: Path, distortion=(0.0,) * 5, P=None, model="plumb_bob") -> Path:
    P = P or K[:3] + [0.0] + K[3:6] + [0.0] + K[6:] + [0.0]
    path.write_text(yaml.safe_dump({
        "image_width": 300, "image_height": 200, "camera_name": "cam_optical",
        "camera_matrix": {"rows": 3, "cols": 3, "data": K}, "distortion_model": model,
        "distortion_coefficients": {"rows": 1, "cols": len(distortion), "data": list(distortion)},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]},
        "projection_matrix": {"rows": 3, "cols": 4, "data": P}}))
    return path


def test_batch_of_three_with_one_corrupt_writes_two_scenes_and_reports_one_failure(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    shutil.copy(PHOTO, images / "a.png")
    shutil.copy(PHOTO, images / "b.png")
    (images / "c.png").write_bytes(PHOTO.read_bytes()[:200])  # truncated: not a readable PNG
    (images / "notes.txt").write_text("not an image")  # a directory's non-image files are not taken
    camera = _camera_yaml(tmp_path / "cam.yaml")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "dpa_ros.cli.reconstruct", "--images", str(images),
                           "--camera-info", str(camera),
                           "--profile", "smoke", "--device", "cpu", "--export", "glb", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr[-3000:]  # the batch ran to the end; one image failed
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "batch_summary.json"]
    for name in ("a", "b"):
        scene = json.loads((out / name / "scene.json").read_text())
        assert scene["profile"] == "smoke" and (out / name / "scene.glb").is_file()
        assert (out / name / "preview.png").is_file()
    rows = json.loads((out / "batch_summary.json").read_text())
    assert [(Path(r["image"]).name, r["ok"]) for r in rows] == [("a.png", True), ("b.png", True), ("c.png", False)]
    assert "cannot read image" in rows[2]["error"] and "c.png" in rows[2]["error"]
    table = proc.stdout.strip().splitlines()
    assert table[0].split()[:4] == ["image", "result", "objects", "seconds"]
    assert table[1].split()[:2] == ["a.png", "ok"] and table[3].split()[:2] == ["c.png", "FAILED"]
    assert table[-1] == "2 of 3 images reconstructed, 1 failed"
    assert proc.stderr.count("c.png failed") == 1  # logged once, as it happened


def test_batch_loads_the_models_once(tmp_path, monkeypatch):
    """In-process: one Pipeline for the whole batch, its models resident after the first image."""
    images = tmp_path / "photos"
    images.mkdir()
    for name in ("x.png", "y.png"):
        shutil.copy(PHOTO, images / name)
    monkeypatch.setattr(reconstruct._PipelineCache, "pipeline", None)
    seen = []
    real_one = reconstruct.reconstruct_one

    def spy(args, image, out, *rest, **kw):
        seen.append((image.name, reconstruct._PipelineCache.pipeline, {k: m.loaded for k, m in
                                                               reconstruct._PipelineCache.pipeline.models().items()}))
        return real_one(args, image, out, *rest, **kw)
    monkeypatch.setattr(reconstruct, "reconstruct_one", spy)
    code = reconstruct.main(["--images", str(images / "*.png"), "--camera-info", str(_camera_yaml(tmp_path / "c.yaml")),
                     "--profile", "smoke", "--device", "cpu", "--export", "none", "--no-progress",
                     "--out", str(tmp_path / "out"), "--prompt", "cup. table."])
    assert code == 0
    (_, first, loaded_before_first), (_, second, loaded_before_second) = seen
    assert first is second
    assert not any(loaded_before_first.values()) and all(loaded_before_second.values())
    # a later call in the same process with another profile gets that profile, not the cached one
    other = reconstruct._pipeline(reconstruct.parse_args(["--image", str(PHOTO),
                                                  "--camera-info", str(tmp_path / "c.yaml"),
                                                  "--profile", "paper", "--device", "cpu",
                                                  "--out", str(tmp_path / "paper")]))
    assert other is not first and other.profile.name == "paper"
    monkeypatch.setattr(reconstruct._PipelineCache, "pipeline", None)


def _grid_points() -> np.ndarray:
    """3D points on a plane 1.5 m ahead, spread over the whole view (camera optical frame, metres)."""
    xs, ys = np.meshgrid(np.linspace(-0.75, 0.75, 9), np.linspace(-0.5, 0.5, 7))
    return np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 1.5)], axis=1)


def test_a_distorted_camera_info_is_rectified_to_the_pinhole_camera_p():
    """Dots rendered through the distortion model (cv2.projectPoints) land, after rectification,
    where the pinhole camera P projects their 3D points."""
    Km = np.array(K).reshape(3, 3)
    points = _grid_points()
    raw_px, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), Km, np.array(D))
    raw = np.zeros((200, 300, 3), np.uint8)
    for u, v in raw_px.reshape(-1, 2):
        cv2.circle(raw, (int(round(u)), int(round(v))), 2, (255, 255, 255), -1)
    depth = np.full((200, 300), 1.5)
    info = CameraInfo(width=300, height=200, K=Km, D=tuple(D), distortion_model="plumb_bob", R=np.eye(3),
                      P=np.hstack([Km, np.zeros((3, 1))]), frame_id="cam")
    image, rect_depth, camera, note = rectify_frame(info, raw, depth)
    assert "rectified" in note and np.allclose(camera.K, Km)
    expected = camera.project(points)
    inside = (expected[:, 0] > 4) & (expected[:, 0] < 295) & (expected[:, 1] > 4) & (expected[:, 1] < 195)
    assert inside.sum() > 30
    gray = image[:, :, 0].astype(float)
    for u, v in expected[inside]:
        y0, x0 = int(round(v)), int(round(u))
        patch = gray[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        yy, xx = np.mgrid[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        centroid = np.array([(xx * patch).sum(), (yy * patch).sum()]) / patch.sum()
        assert np.linalg.norm(centroid - [u, v]) < 1.0  # the dot is where the pinhole camera puts it
    # without rectification the corner dots are several pixels off: the test would notice a no-op
    assert np.abs(raw_px.reshape(-1, 2) - expected).max() > 5
    assert np.isnan(rect_depth).sum() < rect_depth.size and np.nanmax(np.abs(rect_depth - 1.5)) == 0


def test_a_distorted_camera_info_is_refused_on_request_and_an_unknown_model_always(tmp_path):
    camera = _camera_yaml(tmp_path / "cam.yaml", D)
    info = CameraInfo.from_yaml(camera)
    raw = np.zeros((200, 300, 3), np.uint8)
    with pytest.raises(RectificationError, match=r"lens distortion \(plumb_bob: -0.28.*image_rect"):
        rectify_frame(info, raw, policy="refuse")
    odd = CameraInfo.from_yaml(_camera_yaml(tmp_path / "odd.yaml", D, model="kannala_brandt_9"))
    with pytest.raises(RectificationError, match="distortion model 'kannala_brandt_9'"):
        rectify_frame(odd, raw)
    # the command line: --distortion refuse is a one-line user error, exit 2
    proc = subprocess.run([sys.executable, "-m", "dpa_ros.cli.reconstruct", "--image", str(PHOTO),
                           "--camera-info", str(camera),
                           "--profile", "smoke", "--distortion", "refuse", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("dpa-reconstruct: error: camera_info has lens distortion")
    assert not (tmp_path / "out").exists()
