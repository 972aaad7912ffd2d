"""dpa-sim-check on a rendered scene (dpa_testing.synthetic): real MuJoCo, real files.

The true poses rest on the floor, so they must stay put; a box sunk 5 cm into the floor must
report that depth at t = 0 and be pushed out (unstable), outlined red in stability.png."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dpa_ros.cli.sim_check import main
from dpa_ros.core.scene import write_scene
from dpa_ros.export.sim_check import STABILITY_PNG, STABLE_RGB, UNSTABLE_RGB, check_scene
from dpa_ros.overlay import write_png
from dpa_testing.synthetic import make_scene

pytest.importorskip("mujoco", reason="dpa-sim-check simulates in MuJoCo (PyPI mujoco)")

SINK_M = 0.05


def rendered(tmp_path, sink_box: bool = False):
    synthetic = make_scene()
    scene = synthetic.ground_truth_scene()
    if sink_box:
        box = next(o for o in scene.objects if o.label == "box")
        T = np.array(box.T_camera_object, float)
        T[:3, 3] += SINK_M * synthetic.gravity  # gravity: unit, down, optical frame
        box.T_camera_object = T
    write_scene(scene, tmp_path)
    write_png(tmp_path / "preview.png", synthetic.rgb)
    return synthetic, scene


def colour_pixels(image: np.ndarray, rgb) -> int:
    return int(np.all(image == np.array(rgb, np.uint8), axis=2).sum())


def test_true_poses_resting_on_the_floor_are_stable(tmp_path):
    _, scene = rendered(tmp_path)
    report = check_scene(tmp_path, duration_s=2.0)
    assert report.written_mjcf and (tmp_path / "mujoco" / "scene.xml").is_file()
    assert [o.label for o in report.objects] == [o.label for o in scene.objects]
    for o in report.objects:
        assert o.penetration_t0_m < 0.005, o
        assert o.stable and o.drift_m < 0.01 and o.turn_deg < 2.0, o
    assert report.stable_rate == 1.0
    again = check_scene(tmp_path, duration_s=2.0)
    assert not again.written_mjcf  # the existing model is simulated as it is


def test_a_box_sunk_5cm_reports_its_depth_and_moves(tmp_path):
    rendered(tmp_path, sink_box=True)
    report = check_scene(tmp_path, duration_s=1.0)
    by_label = {o.label: o for o in report.objects}
    assert by_label["box"].penetration_t0_m == pytest.approx(SINK_M, abs=0.005)
    assert not by_label["box"].stable
    assert by_label["chair"].stable and by_label["cabinet"].stable
    assert report.stable_rate == pytest.approx(2 / 3)


def test_cli_json_image_and_exit_codes(tmp_path, capsys):
    synthetic, _ = rendered(tmp_path, sink_box=True)
    assert main([str(tmp_path), "--json", "--duration", "1.0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "sim_check.json").read_text())
    assert {o["label"]: o["stable"] for o in printed["objects"]} == {"chair": True, "cabinet": True, "box": False}
    image = np.asarray(Image.open(tmp_path / STABILITY_PNG).convert("RGB"))
    assert image.shape == synthetic.rgb.shape
    # drawn on the preview: red around the sunk box, green around the others, the rest untouched
    box_mask = synthetic.masks[synthetic.labels.index("box")]
    red = np.all(image == np.array(UNSTABLE_RGB, np.uint8), axis=2)
    assert red[box_mask].sum() > 10
    assert colour_pixels(image, STABLE_RGB) > 20
    untouched = np.all(image == synthetic.rgb, axis=2)
    assert untouched.mean() > 0.7

    assert main([str(tmp_path), "--strict", "--duration", "0.5", "--no-image"]) == 1
    table = capsys.readouterr().out.splitlines()
    assert table[-1].startswith("stable: 2/3")
    assert any(line.split()[-1] == "no" and "box" in line for line in table)

    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "neither scene.json" in err and err.count("\n") == 1
    assert main([str(tmp_path), "--duration", "0"]) == 2
    assert "duration" in capsys.readouterr().err


def test_module_runs_as_a_script_and_rewrites_the_model(tmp_path):
    rendered(tmp_path)
    check_scene(tmp_path, duration_s=0.2)
    xml = tmp_path / "mujoco" / "scene.xml"
    xml.write_text(xml.read_text().replace('timestep="0.002"', 'timestep="0.004"'))
    run = subprocess.run([sys.executable, "-m", "dpa_ros.cli.sim_check", str(tmp_path), "--write-mjcf",
                          "--duration", "0.5", "--json"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["written_mjcf"] is True
    assert 'timestep="0.002"' in xml.read_text()
