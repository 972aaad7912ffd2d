"""The overlay image (dpa_ros.overlay) against silhouettes computed independently: the convex hull
of each box's 8 projected corners (a convex solid's silhouette is exactly that), tested at pixel
centres with scipy's Delaunay. Input images are random noise, so any pixel the overlay touches shows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
import yaml
from PIL import Image
from scipy import ndimage
from scipy.spatial import Delaunay
from scipy.spatial.transform import Rotation

from dpa_ros.cli import reconstruct
from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Scene, SceneObject, read_scene
from dpa_ros.overlay import DEFAULT_ALPHA, PREVIEW_PNG, draw_overlay, object_colour
from dpa_testing import synthetic

W, H = 320, 240
CAMERA = CameraModel(K=np.array([[290.0, 0, 157.3], [0, 300.0, 121.9], [0, 0, 1]]), width=W, height=H,
                     frame_id="cam_optical")
EXTENTS = ((0.40, 0.25, 0.30), (0.30, 0.50, 0.20), (0.2, 0.2, 0.2))


def _box_object(i: int, rng: np.random.Generator, position, label: str) -> SceneObject:
    mesh = trimesh.creation.box(EXTENTS[i])
    mesh.apply_translation(rng.uniform(-0.05, 0.05, 3))  # mesh origin off its centre
    scale = float(rng.uniform(0.8, 1.4))
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=rng).as_matrix() * scale
    T[:3, 3] = position
    return SceneObject(id=10 + i, label=label, score=float(rng.uniform(0.4, 1.0)), mesh=mesh,
                       T_camera_object=T, scale=scale)


def _expected_mask(obj: SceneObject) -> np.ndarray:
    corners = np.asarray(obj.mesh_in_camera().bounding_box_oriented.vertices)  # the box itself
    uv = CAMERA.project(corners)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    inside = Delaunay(uv).find_simplex(np.stack([u.ravel(), v.ravel()], axis=1)) >= 0
    return inside.reshape(H, W)


@pytest.fixture(params=[3, 11, 2024])
def scene_and_image(request):
    rng = np.random.default_rng(request.param)
    near = _box_object(0, rng, (rng.uniform(-0.2, 0.0), rng.uniform(-0.1, 0.1), 1.6), "chair")
    far = _box_object(1, rng, (rng.uniform(0.1, 0.3), rng.uniform(-0.1, 0.1), 2.6), "chair")
    # the far object first: the painter's order must come from depth, not from the list
    scene = Scene(camera=CAMERA, objects=[far, near])
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return scene, image


def _blend(base: np.ndarray, colour, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    return (1 - alpha) * base.astype(np.float64) + alpha * np.asarray(colour, np.float64)


def test_pixels_inside_each_object_get_its_colour_and_outside_stay_the_input(scene_and_image):
    scene, image = scene_and_image
    out = draw_overlay(image, scene, labels=False)
    assert out.shape == image.shape and out.dtype == np.uint8
    far_mask, near_mask = (_expected_mask(o) for o in scene.objects)
    assert near_mask.sum() > 500 and far_mask.sum() > 500
    far_colour, near_colour = object_colour(0), object_colour(1)
    assert far_colour != near_colour
    grow = lambda m: ndimage.binary_dilation(m, iterations=2)  # noqa: E731 - pixel-centre vs fill rounding
    shrink = lambda m: ndimage.binary_erosion(m, iterations=3)  # noqa: E731 - also clears the 1 px outline

    outside = ~grow(far_mask | near_mask)
    np.testing.assert_array_equal(out[outside], image[outside])

    only_near = shrink(near_mask) & ~grow(far_mask)
    assert only_near.sum() > 100
    np.testing.assert_allclose(out[only_near], _blend(image[only_near], near_colour), atol=1.0)
    only_far = shrink(far_mask) & ~grow(near_mask)
    assert only_far.sum() > 100
    np.testing.assert_allclose(out[only_far], _blend(image[only_far], far_colour), atol=1.0)
    # where both project, the nearer object is painted last, over the farther one
    both = shrink(far_mask) & shrink(near_mask)
    assert both.sum() > 50  # the scenes are made so that the near box hides part of the far one
    np.testing.assert_allclose(out[both], _blend(_blend(image[both], far_colour), near_colour), atol=1.5)

    # the outline: a line of pure colour along the silhouette's boundary (within a pixel of it)
    edge = near_mask & ~ndimage.binary_erosion(near_mask)
    ring = ndimage.binary_dilation(near_mask) & ~ndimage.binary_erosion(near_mask, iterations=2)
    pure = np.all(out == near_colour, axis=2)
    assert pure[ring].sum() >= 0.8 * edge.sum()
    assert pure[only_near].sum() == 0
    before = image.copy()
    draw_overlay(image, scene)
    np.testing.assert_array_equal(image, before)  # the input array itself is left alone


def test_labels_sit_above_their_objects_in_their_colour(scene_and_image):
    scene, image = scene_and_image
    plain, labelled = draw_overlay(image, scene, labels=False), draw_overlay(image, scene, labels=True)
    changed = np.any(plain != labelled, axis=2)
    assert changed.sum() > 100
    for i, obj in enumerate(scene.objects):
        mask = _expected_mask(obj)
        rows, cols = np.nonzero(mask)
        top = max(rows.min() - 40, 0)
        band = np.zeros_like(mask)
        band[top: rows.min() + 3, max(cols.min() - 3, 0):] = True
        label_fill = changed & band & np.all(labelled == object_colour(i), axis=2)
        assert label_fill.sum() > 50, f"no label box in object {obj.id}'s colour above it"
    # nothing far from the objects and their labels changed
    rows, cols = np.nonzero(changed)
    all_masks = np.zeros((H, W), bool)
    for obj in scene.objects:
        all_masks |= _expected_mask(obj)
    r_obj, _ = np.nonzero(all_masks)
    assert rows.min() >= max(r_obj.min() - 40, 0)


def test_objects_behind_or_beside_the_camera_leave_the_image_unchanged():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    behind = _box_object(2, rng, (0.0, 0.0, -1.5), "lamp")
    beside = _box_object(2, rng, (8.0, 0.0, 1.0), "lamp")
    out = draw_overlay(image, Scene(camera=CAMERA, objects=[behind, beside]))
    np.testing.assert_array_equal(out, image)


def test_bad_inputs_are_named():
    scene = Scene(camera=CAMERA)
    with pytest.raises(ValueError, match=r"image is 100x80 but the scene's camera is 320x240"):
        draw_overlay(np.zeros((80, 100, 3), np.uint8), scene)
    with pytest.raises(ValueError, match="uint8 RGB"):
        draw_overlay(np.zeros((H, W, 3), np.float32), scene)
    with pytest.raises(ValueError, match="alpha"):
        draw_overlay(np.zeros((H, W, 3), np.uint8), scene, alpha=1.5)


def test_dpa_reconstruct_writes_preview_png_of_the_fitted_scene(tmp_path):
    """The CLI on a rendered scene of its own (instances + depth): preview.png is the input image
    with the fitted objects drawn where the masks say they are."""
    scene = synthetic.make_scene()
    d = tmp_path / "in"
    (d / "priors").mkdir(parents=True)
    Image.fromarray(scene.rgb).save(d / "rgb.png")
    np.save(d / "depth.npy", scene.depth)
    (d / "cam.yaml").write_text(yaml.safe_dump(scene.camera.to_camera_info_dict()))
    (d / "layout.yaml").write_text("layout:\n  points: 300\n  iterations: 100\n  restarts: 4\n")
    entries = []
    for i, (label, mask, mesh) in enumerate(zip(scene.labels, scene.masks, scene.meshes)):
        Image.fromarray(mask.astype(np.uint8) * 255).save(d / "priors" / f"mask{i}.png")
        mesh.export(d / "priors" / f"mesh{i}.obj")
        entries.append({"label": label, "mask": f"priors/mask{i}.png", "meshes": [f"priors/mesh{i}.obj"]})
    (d / "instances.json").write_text(json.dumps(entries))
    out = tmp_path / "out"
    assert reconstruct.main(["--image", str(d / "rgb.png"), "--depth", str(d / "depth.npy"), "--camera-info",
                     str(d / "cam.yaml"), "--instances", str(d / "instances.json"), "--config",
                     str(d / "layout.yaml"), "--out", str(out), "--export", "none", "--no-progress",
                     "--seed", "0", "--device", "cpu"]) == 0
    with Image.open(out / PREVIEW_PNG) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        preview = np.asarray(img)
    assert preview.shape == scene.rgb.shape
    fitted = read_scene(out)
    assert [o.label for o in fitted.objects] == list(scene.labels)
    rgb = scene.rgb.astype(np.float64)
    for index, (obj, mask) in enumerate(zip(fitted.objects, scene.masks)):
        # inside its mask, the picture is tinted toward the object's own colour (the palette's index-th)
        core = ndimage.binary_erosion(mask, iterations=2)
        toward = np.einsum("nc,nc->n", preview[core] - rgb[core], np.asarray(object_colour(index), float) - rgb[core])
        assert (toward > 0).mean() > 0.9, f"object {obj.id} ({obj.label}) not drawn over its mask"
    # away from every mask the input stays, but for the labels (3 boxes of about 70 × 14 px in this
    # 160 × 120 image) and the fitted shapes' parts hidden behind other objects
    away = ~ndimage.binary_dilation(np.logical_or.reduce(scene.masks), iterations=8)
    assert np.any(preview != scene.rgb, axis=2)[away].mean() < 0.2
