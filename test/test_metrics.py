"""CD-L1 / CD-L1-S / F-score and dpa-eval against known answers."""
import json

import numpy as np
import pytest
import trimesh

from dpa_ros.cli import evaluate as eval_cli
from dpa_ros.core.scene import write_scene
from dpa_ros.geometry import metrics
from dpa_testing import synthetic


def test_known_distances():
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    pred = np.array([[0.0, 0.2, 0], [1.0, 0.04, 0], [5.0, 0, 0]])
    m = metrics.point_metrics(pred, gt, taus=(0.1, 0.05))
    assert m["cd_l1_s"] == pytest.approx((0.2 + 0.04 + 4.0) / 3)
    assert m["cd_l1"] == pytest.approx(0.5 * ((0.2 + 0.04 + 4.0) / 3 + (0.2 + 0.04) / 2))
    # precision 1/3, recall 1/2 at both thresholds
    assert m["fscore@0.1"] == pytest.approx(100 * 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert m["fscore@0.05"] == m["fscore@0.1"]


def test_identical_scenes_score_perfectly_and_a_shift_is_measured():
    scene = synthetic.make_scene()
    gt = scene.ground_truth_scene()
    m = metrics.scene_metrics(gt, gt, count=5000)
    assert m["fscore@0.05"] > 99.0 and m["cd_l1"] < 0.02     # sampling spacing only
    shifted = scene.ground_truth_scene()
    for o in shifted.objects:
        o.T_camera_object = o.T_camera_object.copy()
        o.T_camera_object[:3, 3] += [0.3, 0.0, 0.0]
    m = metrics.scene_metrics(shifted, gt, count=5000)
    assert m["fscore@0.05"] < 30.0 and 0.1 < m["cd_l1"] <= 0.3


def test_paper_protocol_registers_a_rigidly_moved_prediction():
    mesh = synthetic.make_chair()
    gt = metrics.sample_mesh_points(mesh, 4000, seed=0)
    T = trimesh.transformations.rotation_matrix(0.15, [0, 1, 0])
    T[:3, 3] = [0.4, -0.1, 0.2]
    pred = metrics.sample_mesh_points(mesh, 4000, seed=1) @ T[:3, :3].T + T[:3, 3]
    raw = metrics.point_metrics(pred, gt)
    reg = metrics.point_metrics(metrics.paper_register(pred, gt), gt)
    assert raw["fscore@0.05"] < 20.0
    assert reg["fscore@0.05"] > 95.0 and reg["cd_l1"] < 0.02


def test_dpa_eval_cli(tmp_path, capsys):
    scene = synthetic.make_scene()
    write_scene(scene.ground_truth_scene(), tmp_path / "gt")
    pred = scene.ground_truth_scene()
    pred.objects[0].T_camera_object = pred.objects[0].T_camera_object.copy()
    pred.objects[0].T_camera_object[:3, 3] += [0.0, 0.0, 0.5]
    write_scene(pred, tmp_path / "pred")
    out = tmp_path / "m.json"
    assert eval_cli.main([str(tmp_path / "pred"), str(tmp_path / "gt"), "--points", "4000", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cd_l1" in printed and "fscore@0.1" in printed and "fscore@0.05" in printed
    data = json.loads(out.read_text())
    assert data["registered"] is False and 40.0 < data["fscore@0.1"] < 95.0
    assert eval_cli.main([str(tmp_path / "gt"), str(tmp_path / "gt"), "--points", "4000"]) == 0
    assert eval_cli.main([str(tmp_path / "nope"), str(tmp_path / "gt")]) == 2
    assert "dpa-eval: error:" in capsys.readouterr().err
