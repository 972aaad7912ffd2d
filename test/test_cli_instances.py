"""dpa-reconstruct --instances end to end on a rendered scene written to disk, and its user errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from dpa_ros.assemble import InstancesFileError, load_instances_json
from dpa_ros.cli import reconstruct
from dpa_ros.core.scene import read_scene
from dpa_ros.geometry.mesh_frames import rotation_to_gltf
from dpa_testing import synthetic

LAYOUT_YAML = "layout:\n  points: 300\n  iterations: 100\n  restarts: 4\n"
#: glTF (+y up) → z-up (+z up, front −y), as Blender/Shap-E/ROS assets are authored
Z_UP_FROM_GLTF = np.eye(4)
Z_UP_FROM_GLTF[:3, :3] = rotation_to_gltf("+z").T


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The default synthetic scene as files: RGB PNG, 16-bit depth PNG (mm), camera_info YAML,
    masks, meshes (glTF convention, OBJ; the same turned z-up, GLB) and the instances JSON."""
    d = tmp_path_factory.mktemp("inputs")
    scene = synthetic.make_scene()
    Image.fromarray(scene.rgb).save(d / "rgb.png")
    depth_mm = np.where(np.isfinite(scene.depth), np.round(scene.depth * 1000), 0).astype(np.uint16)
    Image.fromarray(depth_mm).save(d / "depth.png")
    np.save(d / "depth.npy", scene.depth)
    (d / "cam.yaml").write_text(yaml.safe_dump(scene.camera.to_camera_info_dict()))
    (d / "layout.yaml").write_text(LAYOUT_YAML)
    entries = []
    (d / "priors").mkdir()
    for i, (label, mask, mesh) in enumerate(zip(scene.labels, scene.masks, scene.meshes)):
        Image.fromarray(mask.astype(np.uint8) * 255).save(d / "priors" / f"mask{i}.png")
        mesh.export(d / "priors" / f"mesh{i}.obj")
        z_up = mesh.copy()
        z_up.apply_transform(Z_UP_FROM_GLTF)
        z_up.export(d / "priors" / f"mesh{i}_zup.glb")
        entries.append({"label": label, "score": 0.9, "mask": f"priors/mask{i}.png", "meshes": [f"priors/mesh{i}.obj"]})
    (d / "instances.json").write_text(json.dumps(entries))
    return d, scene


def _args(d, out, *extra):
    return ["--image", str(d / "rgb.png"), "--depth", str(d / "depth.png"), "--camera-info", str(d / "cam.yaml"),
            "--instances", str(d / "instances.json"), "--config", str(d / "layout.yaml"), "--out", str(out),
            "--export", "none", "--no-progress", *extra]


def test_reconstruct_with_instances_writes_the_scene(inputs, tmp_path, caplog):
    d, scene = inputs
    caplog.set_level("INFO")
    assert reconstruct.main(_args(d, tmp_path / "out", "--seed", "0", "--device", "cpu")) == 0
    data = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert [o["label"] for o in data["objects"]] == scene.labels
    assert all((tmp_path / "out" / o["mesh"]).exists() for o in data["objects"])
    assert (tmp_path / "out" / "scene_cloud.ply").exists()
    assert set(data["timings_s"]) == {"background", "layout", "physics", "assemble"}
    assert data["camera"]["width"] == 160 and len(data["camera"]["K"]) == 9
    got = read_scene(tmp_path / "out")
    for obj, T, s, mesh in zip(got.objects, scene.poses, scene.scales, scene.meshes):
        c = mesh.bounds.mean(0)
        # 16-bit millimetre depth: the same 3 cm / 5 % bounds as in memory.
        placed = obj.T_camera_object[:3, :3] @ c + obj.T_camera_object[:3, 3]
        assert np.linalg.norm(placed - (T[:3, :3] @ c + T[:3, 3])) < 0.03
        assert abs(obj.scale / s - 1) < 0.05
        assert obj.score == pytest.approx(0.9)
    for o in data["objects"]:
        assert o["proposal_errors"] == [o["fit_error"]] and o["proposal_index"] == 0
    assert "3 objects placed" in caplog.text and "layout" in caplog.text


def _centre_errors(scene, got, to_file):
    out = []
    for obj, T, mesh in zip(got.objects, scene.poses, scene.meshes):
        c = mesh.bounds.mean(0)
        T_file = T @ np.linalg.inv(to_file)             # ground truth of the mesh as written
        c_file = to_file[:3, :3] @ c + to_file[:3, 3]
        out.append(float(np.linalg.norm(obj.T_camera_object[:3, :3] @ c_file + obj.T_camera_object[:3, 3]
                                        - (T_file[:3, :3] @ c_file + T_file[:3, 3]))))
    return out


def test_z_up_meshes_with_mesh_up_or_per_instance_up(inputs, tmp_path):
    """The same meshes authored z-up: ``--mesh-up +z`` for all, or ``"up": "+z"`` per entry, gives the
    same placement; the objects keep the meshes as given."""
    d, scene = inputs
    entries = json.loads((d / "instances.json").read_text())
    for i, e in enumerate(entries):
        e["meshes"] = [f"priors/mesh{i}_zup.glb"]
    (d / "instances_zup.json").write_text(json.dumps(entries))
    for e in entries:
        e["up"] = "+z"
    (d / "instances_zup_entries.json").write_text(json.dumps(entries))
    for name, extra in (("instances_zup.json", ["--mesh-up", "+z"]), ("instances_zup_entries.json", [])):
        args = _args(d, tmp_path / name, "--device", "cpu", *extra)
        args[args.index("--instances") + 1] = str(d / name)
        assert reconstruct.main(args) == 0
        got = read_scene(tmp_path / name)
        assert max(_centre_errors(scene, got, Z_UP_FROM_GLTF)) < 0.03, name
        written = got.objects[0].mesh
        np.testing.assert_allclose(written.bounds, (scene.meshes[0].copy().apply_transform(Z_UP_FROM_GLTF)).bounds,
                                   atol=1e-5)


def test_bad_up_axis_is_a_one_line_error(inputs, tmp_path, capsys):
    d, _ = inputs
    entries = json.loads((d / "instances.json").read_text())
    entries[1]["up"] = "north"
    (d / "instances_bad_up.json").write_text(json.dumps(entries))
    args = _args(d, tmp_path / "o")
    args[args.index("--instances") + 1] = str(d / "instances_bad_up.json")
    assert reconstruct.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "instance 1 ('cabinet')" in err and "up axis must be one of +y, +z, -y, -z, +x, -x" in err
    with pytest.raises(SystemExit):
        reconstruct.parse_args(_args(d, tmp_path / "o", "--mesh-up", "z-up"))


def test_second_run_into_the_same_out_needs_force_and_then_replaces_the_exports(inputs, tmp_path, capsys):
    d, _ = inputs
    out = tmp_path / "out"
    args = [a if a != "none" else "glb,gazebo" for a in _args(d, out, "--seed", "0", "--device", "cpu")]
    assert reconstruct.main(args) == 0
    first = (out / "scene.glb").stat().st_mtime_ns
    capsys.readouterr()
    assert reconstruct.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "not empty" in err and "--force" in err and len(err.splitlines()) == 1
    assert (out / "scene.glb").stat().st_mtime_ns == first  # nothing was touched
    assert reconstruct.main([*args, "--force"]) == 0
    assert (out / "scene.glb").stat().st_mtime_ns > first
    assert (out / "gazebo" / "scene.sdf").is_file()


def test_depth_files_png_millimetres_and_npy_metres(inputs):
    d, scene = inputs
    valid = np.isfinite(scene.depth)
    npy = reconstruct.load_depth(d / "depth.npy", 0.001)
    png = reconstruct.load_depth(d / "depth.png", 0.001)
    np.testing.assert_array_equal(npy[valid], scene.depth[valid])
    assert np.abs(png[valid] - scene.depth[valid]).max() <= 0.0005
    assert np.isnan(png[~valid]).all() and np.isnan(npy[~valid]).all()


def test_export_formats_are_checked(inputs, tmp_path, capsys):
    d, _ = inputs
    args = _args(d, tmp_path / "o")
    args[args.index("--export") + 1] = "glb,stl"
    assert reconstruct.main(args) == 2
    assert "unknown format(s) stl" in capsys.readouterr().err


def test_instances_without_depth_is_a_one_line_error(inputs, tmp_path, capsys):
    d, _ = inputs
    args = _args(d, tmp_path / "o")
    i = args.index("--depth")
    del args[i:i + 2]
    assert reconstruct.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dpa-reconstruct: error: --instances needs --depth (metric depth from the sensor)"


def test_bad_instances_entry_is_named(inputs, tmp_path, capsys):
    d, _ = inputs
    bad = json.loads((d / "instances.json").read_text())
    bad[1]["meshes"] = ["priors/missing.obj"]
    (tmp_path / "priors").symlink_to(d / "priors")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(InstancesFileError, match=r"instance 1 \('cabinet'\): cannot use mesh .*missing.obj"):
        load_instances_json(path)
    args = _args(d, tmp_path / "o")
    args[args.index("--instances") + 1] = str(path)
    assert reconstruct.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "instance 1 ('cabinet')" in err
    bad[0] = {"mask": "priors/mask0.png", "meshes": []}
    path.write_text(json.dumps(bad))
    with pytest.raises(InstancesFileError, match="instance 0: missing or empty 'label'"):
        load_instances_json(path)


def test_empty_mask_file_fails_naming_the_instance(inputs, tmp_path, capsys):
    d, scene = inputs
    entries = json.loads((d / "instances.json").read_text())
    Image.fromarray(np.zeros((scene.camera.height, scene.camera.width), np.uint8)).save(tmp_path / "empty.png")
    entries[2]["mask"] = str(tmp_path / "empty.png")
    for e in entries[:2]:
        e["mask"] = str(d / e["mask"])
        e["meshes"] = [str(d / m) for m in e["meshes"]]
    entries[2]["meshes"] = [str(d / m) for m in entries[2]["meshes"]]
    (tmp_path / "i.json").write_text(json.dumps(entries))
    args = _args(d, tmp_path / "o")
    args[args.index("--instances") + 1] = str(tmp_path / "i.json")
    assert reconstruct.main(args) == 2
    assert "instance 2 ('box'): mask is empty" in capsys.readouterr().err


def test_console_script_reports_user_errors_without_traceback(inputs, tmp_path):
    d, _ = inputs
    proc = subprocess.run([sys.executable, "-m", "dpa_ros.cli.reconstruct", "--image", str(d / "rgb.png"),
                           "--camera-info", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    missing = tmp_path / "missing.yaml"
    assert proc.stderr.strip().splitlines() == [f"dpa-reconstruct: error: --camera-info {missing} does not exist"]


def test_one_list_of_export_formats_and_obj_is_accepted(inputs, tmp_path):
    """dpa-reconstruct --export and dpa-export take the exporter's own list; --export obj writes the
    per-object OBJ files that the exporter makes."""
    from dpa_ros.cli.export import build_parser
    from dpa_ros.export import FORMATS

    assert "obj" in FORMATS and reconstruct.EXPORT_FORMATS is FORMATS
    assert build_parser().get_default("format") == ",".join(FORMATS)
    d, scene = inputs
    args = _args(d, tmp_path / "out", "--seed", "0", "--device", "cpu")
    assert reconstruct.parse_args(args[: args.index("--export")]).export == ",".join(FORMATS)  # the default: all
    args[args.index("--export") + 1] = "obj"
    assert reconstruct.main(args) == 0
    objs = sorted((tmp_path / "out" / "obj_world").glob("*.obj"))
    assert len(objs) == len(scene.labels)
    assert not (tmp_path / "out" / "scene.glb").exists()  # only what was asked for


def test_given_gravity_wins_over_the_floor_and_is_recorded(inputs, tmp_path):
    d, scene = inputs
    # the true gravity turned 2 degrees about the optical x axis: the scene must carry it verbatim
    a = np.radians(2.0)
    turn = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    given = turn @ scene.gravity
    text = ",".join(f"{v:.9f}" for v in 3.0 * given)          # not unit length: it is normalised
    assert reconstruct.main(_args(d, tmp_path / "out", "--gravity", text)) == 0
    placed = read_scene(tmp_path / "out")
    np.testing.assert_allclose(placed.background.gravity, given, atol=1e-8)
    assert placed.background.gravity_source == "given"
    for obj in placed.objects:        # 5 DoF about the given gravity: each mesh's +y (up) stays along -gravity
        up = obj.rotation @ np.array([0.0, 1.0, 0.0])
        assert np.degrees(np.arccos(np.clip(up @ -given, -1, 1))) < 0.01
    assert reconstruct.main(_args(d, tmp_path / "floor")) == 0
    fitted = read_scene(tmp_path / "floor").background
    assert fitted.gravity_source == "floor"
    assert np.degrees(np.arccos(np.clip(fitted.gravity @ scene.gravity, -1, 1))) < 1.0


@pytest.mark.parametrize("value", ["0,0,0", "nan,1,0", "1,2", "a,b,c"])
def test_bad_gravity_is_a_usage_error(inputs, tmp_path, capsys, value):
    d, _ = inputs
    with pytest.raises(SystemExit) as exc:
        reconstruct.main(_args(d, tmp_path / "out", "--gravity", value))
    assert exc.value.code == 2
    assert "--gravity" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_physics_stage_rests_objects_on_the_floor_and_can_be_turned_off(inputs, tmp_path, capsys):
    d, scene = inputs
    assert reconstruct.main(_args(d, tmp_path / "on")) == 0
    on = json.loads((tmp_path / "on" / "scene.json").read_text())
    assert [o["support"] for o in on["objects"]] == ["floor"] * len(scene.labels)
    for o in on["objects"]:
        assert o["penetration_m"]["after"] <= 0.005 and o["physics_shift_m"] < 0.05
    placed = read_scene(tmp_path / "on")
    floor = placed.background.floor
    for obj in placed.objects:       # every object's lowest point on the fitted floor, within 2 mm
        lowest = (obj.mesh_in_camera().vertices @ floor.normal + floor.offset).min()
        assert abs(lowest) < 0.002, (obj.label, lowest)

    assert reconstruct.main(_args(d, tmp_path / "off", "--no-physics")) == 0
    off = json.loads((tmp_path / "off" / "scene.json").read_text())
    assert [o["support"] for o in off["objects"]] == [""] * len(scene.labels)
    assert all(o["physics_shift_m"] == 0.0 and o["penetration_m"]["after"] is None for o in off["objects"])

    (d / "bad_physics.yaml").write_text("physics:\n  max_shift: 0.1\n")
    args = _args(d, tmp_path / "bad")
    args[args.index("--config") + 1] = str(d / "bad_physics.yaml")
    assert reconstruct.main(args) == 2
    assert "physics.max_shift: unknown key (did you mean 'max_shift_m'?)" in capsys.readouterr().err


@pytest.mark.parametrize("scale", ["0", "-0.001"])
def test_depth_scale_must_be_positive(inputs, tmp_path, capsys, scale):
    d, _ = inputs
    assert reconstruct.main(_args(d, tmp_path / "o", "--depth-scale", scale)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dpa-reconstruct: error: --depth-scale must be positive, got {float(scale)}"
    assert not (tmp_path / "o").exists()


def test_unreadable_and_multi_channel_depth_are_one_line_errors(inputs, tmp_path, capsys):
    d, _ = inputs
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    args = _args(d, tmp_path / "o")
    args[args.index("--depth") + 1] = str(junk)
    assert reconstruct.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dpa-reconstruct: error: cannot read depth {junk}: ") and "\n" not in err

    rgb_depth = tmp_path / "rgb_depth.png"
    Image.open(d / "rgb.png").convert("RGB").save(rgb_depth)
    args[args.index("--depth") + 1] = str(rgb_depth)
    assert reconstruct.main(args) == 2
    shape = np.asarray(Image.open(d / "rgb.png").convert("RGB")).shape
    assert capsys.readouterr().err.strip() == (f"dpa-reconstruct: error: depth {rgb_depth} must be a single-channel "
                                                f"image, got shape {shape}")


@pytest.mark.parametrize("text,reason", [
    ("layout: [1, 2\n", "cannot read config"),                       # not YAML
    ("- layout\n", "must be a YAML mapping"),                       # a list
    ("layout: 3\n", "'layout' must be a mapping"),
    ("layout:\n  iters: 10\n", "layout.iters: unknown key (did you mean 'iterations'?)"),
    ("layout:\n  restarts: 0\n", "restarts"),
    ("targets:\n  depth_smoothing: -1\n", "targets depth_smoothing must be an integer >= 0 pixels, got -1"),
    ("layout:\n  depth_smoothing: 3\ntargets:\n  depth_smoothing: 3\n", "keep only targets.depth_smoothing"),
])
def test_bad_config_yaml_on_the_instances_path_is_a_one_line_error(inputs, tmp_path, capsys, text, reason):
    d, _ = inputs
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    args = _args(d, tmp_path / "o")
    args[args.index("--config") + 1] = str(bad)
    assert reconstruct.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dpa-reconstruct: error: ") and str(bad) in err and reason in err and "\n" not in err


def test_the_old_layout_depth_smoothing_key_still_runs_with_a_warning(inputs, tmp_path):
    """A --config written before ``depth_smoothing`` moved to ``targets:`` still reconstructs."""
    d, scene = inputs
    old = tmp_path / "old.yaml"
    old.write_text(LAYOUT_YAML + "  depth_smoothing: 0\n")
    args = _args(d, tmp_path / "o", "--device", "cpu")
    args[args.index("--config") + 1] = str(old)
    with pytest.warns(FutureWarning, match=r"layout\.depth_smoothing is deprecated .* to targets\.depth_smoothing"):
        assert reconstruct.main(args) == 0
    assert [o.label for o in read_scene(tmp_path / "o").objects] == scene.labels
