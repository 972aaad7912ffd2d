"""dpa-export: the installed console script and its argument handling."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from export_scenes import gt_objects, make_scene
from pxr import Sdf, Usd, UsdPhysics

from dpa_ros.cli.export import main
from dpa_ros.core.scene import write_scene

SCRIPT = Path(sys.executable).parent / "dpa-export"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_console_script_exports_refuses_and_forces(tmp_path):
    write_scene(make_scene(), tmp_path)
    first = run_cli(str(tmp_path), "--format", "glb,gazebo")
    assert first.returncode == 0, first.stderr
    listed = [line.split("\t") for line in first.stdout.splitlines()]
    assert {fmt for fmt, _ in listed} == {"glb", "gazebo"}
    assert all(Path(p).is_file() for _, p in listed)
    assert not (tmp_path / "scene.usda").exists()

    again = run_cli(str(tmp_path), "--format", "gazebo")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "--force" in again.stderr

    forced = run_cli(str(tmp_path), "--format", "gazebo", "--force")
    assert forced.returncode == 0, forced.stderr


def test_cli_options_reach_the_files(tmp_path, capsys):
    scene = make_scene(with_floor=False, with_cloud=False)
    write_scene(scene, tmp_path)
    rc = main([str(tmp_path), "--format", "usd,obj", "--pitch", "20", "--camera-height", "1.5",
               "--density", "1000", "--static", "--usdc", "--face-budget", "100"])
    assert rc == 0
    assert (tmp_path / "scene.usdc").is_file()
    layer = Sdf.Layer.FindOrOpen(str(tmp_path / "scene.usda"))
    layer.Reload()
    stage = Usd.Stage.Open(layer)
    assert stage.GetRootLayer().customLayerData["dpa_ros_world_frame"]["source"] == "pitch_roll"
    _, _, box, T_wo, _ = gt_objects()[0]
    prim = stage.GetPrimAtPath("/World/Objects/dpa_object_1")
    assert UsdPhysics.RigidBodyAPI(prim).GetKinematicEnabledAttr().Get() is True
    assert abs(UsdPhysics.MassAPI(prim).GetMassAttr().Get() - 1000 * box.volume) < 1e-3
    placed = trimesh.load(tmp_path / "obj_world" / "dpa_object_1.obj", process=False, skip_materials=True)
    np.testing.assert_allclose(placed.vertices, box.vertices @ T_wo[:3, :3].T + T_wo[:3, 3], atol=1e-5)
    sphere = trimesh.load(tmp_path / "obj_world" / "dpa_object_2.obj", process=False, skip_materials=True)
    assert len(sphere.faces) <= 100

    T = np.eye(4)
    T[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # a level camera, origin at the camera
    rc = main([str(tmp_path), "--format", "obj", "--force", "--world", "matrix",
               "--T-world-camera", " ".join(map(str, T.ravel()))])
    assert rc == 0
    header = (tmp_path / "obj_world" / "dpa_object_1.obj").read_text().splitlines()[1]
    frame = json.loads(header.split("world_frame ", 1)[1])
    np.testing.assert_allclose(frame["T_world_camera"], T)
    capsys.readouterr()


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--format", "glb"]) == 2
    assert "cannot read scene" in capsys.readouterr().err
    write_scene(make_scene(), tmp_path)
    assert main([str(tmp_path), "--format", "glb,fbx"]) == 2
    err = capsys.readouterr().err
    assert "unknown export format" in err and err.count("\n") == 1
    assert main([str(tmp_path), "--world", "matrix"]) == 2
    assert "needs T_world_camera" in capsys.readouterr().err
    assert not (tmp_path / "scene.glb").exists()


def test_cli_mjcf_and_decomposer(tmp_path, capsys):
    """--format mjcf writes mujoco/scene.xml and its meshes; --decomposer reaches every simulator export."""
    write_scene(make_scene(with_cloud=False), tmp_path)
    rc = main([str(tmp_path), "--format", "mjcf,usd", "--collision", "decomposition", "--decomposer", "coacd"])
    assert rc == 0
    listed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert ["mjcf", str(tmp_path / "mujoco" / "scene.xml")] in listed
    assert all(Path(p).is_file() for _, p in listed)
    xml = (tmp_path / "mujoco" / "scene.xml").read_text()
    assert "(coacd)" in xml and '<freejoint name="dpa_object_1"/>' in xml
    stage = Usd.Stage.Open(Sdf.Layer.FindOrOpen(str(tmp_path / "scene.usda")))
    assert stage.GetPrimAtPath("/World/Objects/dpa_object_1").GetCustomDataByKey("dpa_ros:collision") == "coacd"
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses an unknown decomposer
        main([str(tmp_path), "--format", "mjcf", "--force", "--decomposer", "qhull"])
    assert exit_info.value.code == 2 and "qhull" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".txt", ".npy"])
def test_T_world_camera_from_a_file(tmp_path, capsys, suffix):
    """dpa-export --world matrix --T-world-camera FILE: the 4×4 read from a text or .npy file is the
    world frame every export records, and the objects are placed by it."""
    write_scene(make_scene(with_floor=False, with_cloud=False), tmp_path)
    T = np.eye(4)
    T[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # optical → z-up: x forward, z up
    T[:3, 3] = [0.5, -0.2, 1.3]                      # the camera 1.3 m above the world's origin
    path = tmp_path / f"T{suffix}"
    np.save(path, T) if suffix == ".npy" else np.savetxt(path, T)
    assert main([str(tmp_path), "--format", "obj", "--world", "matrix", "--T-world-camera", str(path)]) == 0
    header = (tmp_path / "obj_world" / "dpa_object_1.obj").read_text().splitlines()[1]
    frame = json.loads(header.split("world_frame ", 1)[1])
    np.testing.assert_allclose(frame["T_world_camera"], T)
    _, _, box, _, _ = gt_objects()[0]
    T_co = np.asarray(make_scene(with_floor=False, with_cloud=False).objects[0].T_camera_object)
    placed = trimesh.load(tmp_path / "obj_world" / "dpa_object_1.obj", process=False, skip_materials=True)
    np.testing.assert_allclose(placed.vertices, trimesh.transform_points(box.vertices, T @ T_co), atol=1e-5)
    capsys.readouterr()

    bad = tmp_path / "bad.txt"
    bad.write_text("1 0 0\n0 1 0\n")
    with pytest.raises(SystemExit) as info:  # argparse: a usage error naming the option
        main([str(tmp_path), "--format", "obj", "--force", "--world", "matrix", "--T-world-camera", str(bad)])
    assert info.value.code == 2 and "T_world_camera needs 16 numbers, got 6" in capsys.readouterr().err
