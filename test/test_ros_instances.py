"""Goal instances (dpa_ros/msg/Instance) → layout instances, and the mesh_roots checks; no DDS.

Real messages (through CDR, as the node receives them), real mesh files read back by trimesh,
and the layout fit of the converted instances on a rendered scene.
"""
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from dpa_ros.assemble import assemble_scene  # noqa: E402
from dpa_ros.geometry.layout import LayoutConfig  # noqa: E402
from dpa_ros.ros.conversions import numpy_to_image  # noqa: E402
from dpa_ros.ros.instances import InstancesError, checked_roots, instances_from_goal, mesh_path  # noqa: E402
from dpa_testing import synthetic  # noqa: E402

InstanceMsg = pytest.importorskip("dpa_ros.msg", reason="dpa_ros messages not built: `make setup`").Instance


@pytest.fixture(scope="module")
def scene():
    return synthetic.make_scene()


@pytest.fixture()
def roots(tmp_path, scene):
    """A mesh root with the scene's meshes, a file outside it and a symlink from inside to outside."""
    root = tmp_path / "meshes"
    root.mkdir()
    for i, mesh in enumerate(scene.meshes):
        mesh.export(root / f"mesh{i}.obj")
    (tmp_path / "secret.obj").write_text((root / "mesh0.obj").read_text())
    (root / "link.obj").symlink_to(tmp_path / "secret.obj")
    return root


def entry(label, mask, uris, up=""):
    msg = InstanceMsg(label=label, mask=numpy_to_image(mask.astype(np.uint8) * 255, "mono8"), mesh_uris=list(uris))
    if up:
        msg.up = up
    return deserialize_message(serialize_message(msg), InstanceMsg)


def test_default_up_is_gltf():
    assert InstanceMsg().up == "+y"


def test_goal_instances_fit_the_rendered_scene(scene, roots):
    entries = [entry(lab, m, [f"file://{roots}/mesh{i}.obj"])
               for i, (lab, m) in enumerate(zip(scene.labels, scene.masks))]
    instances = instances_from_goal(entries, scene.camera.width, scene.camera.height, checked_roots([str(roots)]))
    assert [i.label for i in instances] == scene.labels and all(i.up == "+y" for i in instances)
    assert all(np.array_equal(i.mask, m) for i, m in zip(instances, scene.masks))
    got = assemble_scene(scene.rgb, scene.depth, scene.camera, instances,
                         config=LayoutConfig(points=300, iterations=100, restarts=4, seed=0))
    for obj, T, mesh in zip(got.objects, scene.poses, scene.meshes):
        c = mesh.bounds.mean(0)
        assert np.linalg.norm(obj.T_camera_object[:3, :3] @ c + obj.T_camera_object[:3, 3]
                              - (T[:3, :3] @ c + T[:3, 3])) < 0.03


def test_refusals_name_what_is_wrong(scene, roots, tmp_path):
    m = scene.masks[0]
    w, h = scene.camera.width, scene.camera.height
    ok = f"file://{roots}/mesh0.obj"
    r = checked_roots([str(roots)])

    def refused(entries, match, roots=r):
        with pytest.raises(InstancesError, match=match):
            instances_from_goal(entries, w, h, roots)

    refused([entry("chair", m, [ok])], "set the mesh_roots parameter", roots=[])
    refused([entry("chair", m, [f"file://{roots}/../secret.obj"])], f"outside the mesh_roots \\({roots}\\)")
    refused([entry("chair", m, [f"file://{roots}/link.obj"])], f"secret.obj, outside the mesh_roots \\({roots}\\)")
    refused([entry("chair", m, ["http://example.com/mesh.obj"])], f"only file:// URIs under mesh_roots \\({roots}\\)")
    refused([entry("chair", m, [f"file://{roots}/none.obj"])], "instance 0 \\('chair'\\): .*no such file")
    refused([entry("chair", m[:-1], [ok])], f"instance 0 \\('chair'\\): mask is {w}x{h - 1}, the image is {w}x{h}")
    refused([entry("chair", m, [ok]), entry("", m, [ok])], "instance 1: empty label")
    refused([entry("chair", m, [])], "no mesh_uris")
    refused([entry("chair", np.zeros_like(m), [ok])], "empty mask")
    refused([entry("chair", m, [ok], up="+w")], "up:")
    (roots / "empty.obj").write_text("")
    refused([entry("chair", m, [f"file://{roots}/empty.obj"])], "empty.obj")
    with pytest.raises(ValueError, match="not an absolute path to an existing directory"):
        checked_roots(["relative/dir"])
    assert mesh_path(ok, r) == roots / "mesh0.obj"


def test_demo_client_sends_the_sample_instances_the_node_accepts():
    """make demo's goal: samples/room/instances.json as Instance messages, read back by the node's
    conversion under the sample's mesh directory (as the demo node's mesh_roots)."""
    from pathlib import Path

    from dpa_ros.assemble import load_instances_json
    from dpa_ros.ros.demo_client import goal_instances

    sample = Path(__file__).resolve().parents[1] / "samples" / "room"
    entries = [deserialize_message(serialize_message(m), InstanceMsg)
               for m in goal_instances(sample / "instances.json")]
    expected = load_instances_json(sample / "instances.json")
    h, w = expected[0].mask.shape
    got = instances_from_goal(entries, w, h, checked_roots([str(sample / "meshes")]))
    assert [g.label for g in got] == [e.label for e in expected] == ["chair", "cabinet", "box"]
    for g, e in zip(got, expected):
        assert np.array_equal(g.mask, e.mask) and g.up == e.up
        assert [len(m.faces) for m in g.meshes] == [len(m.faces) for m in e.meshes]
    with pytest.raises(InstancesError, match="outside the mesh_roots"):
        instances_from_goal(entries, w, h, checked_roots([str(sample / "masks")]))


def test_a_mask_of_the_received_size_is_downscaled_with_the_image_by_max_image_size(scene, roots):
    import cv2

    from dpa_ros.ros.inputs import processed_size

    w, h = scene.camera.width, scene.camera.height
    big = cv2.resize(scene.masks[0].astype(np.uint8), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST) > 0
    assert processed_size(2 * w, 2 * h, max(w, h)) == (w, h)
    entries = [entry("chair", big, [f"file://{roots}/mesh0.obj"])]
    r = checked_roots([str(roots)])
    got = instances_from_goal(entries, w, h, r, max_image_size=max(w, h))
    assert got[0].mask.shape == (h, w) and np.array_equal(got[0].mask, scene.masks[0])
    with pytest.raises(InstancesError, match=f"mask is {2 * w}x{2 * h}, the image is {w}x{h}"):
        instances_from_goal(entries, w, h, r)  # no max_image_size: the sizes must agree
    with pytest.raises(InstancesError, match="mask is"):
        instances_from_goal(entries, w, h, r, max_image_size=max(w, h) + 10)
