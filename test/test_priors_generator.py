"""Shap-E adapter (stage 4), its frame conversion and the marching-cubes tables, smoke profile."""
import numpy as np
import pytest
import torch
import trimesh

from dpa_ros.priors.generator import SHAP_E_TO_GLTF, ShapEGenerator, shap_e_to_gltf
from dpa_ros.priors.marching_cubes import EDGES, fill_mesh_decoder, tables
from dpa_ros.priors.profiles import load_profile


@pytest.fixture(scope="module")
def gen():
    g = ShapEGenerator(load_profile("smoke").generator, profile="smoke", device="cpu")
    g.load()
    return g


def _images(n, s=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for _ in range(n)]


def test_marching_cubes_tables_make_closed_surfaces():
    from diffusers.pipelines.shap_e.renderer import MeshDecoder

    cases, masks = tables()
    assert cases.shape == (256, 5, 3) and masks.shape == (256, 5)
    assert masks[0].sum() == 0 and masks[255].sum() == 0 and masks[1].sum() == 1
    assert cases.max() < 12 and len(EDGES) == 12
    dec = MeshDecoder()
    fill_mesh_decoder(dec)
    g = torch.linspace(-1, 1, 24)
    x, y, z = torch.meshgrid(g, g, g, indexing="ij")
    field = 0.6 - torch.sqrt((x - 0.1) ** 2 + y ** 2 + (1.5 * z) ** 2)  # an ellipsoid, > 0 inside
    out = dec(field, torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([2.0, 2.0, 2.0]))
    mesh = trimesh.Trimesh(out.verts.numpy(), out.faces.numpy())
    assert mesh.is_watertight and mesh.is_winding_consistent
    expected = 4 / 3 * np.pi * 0.6 ** 3 / 1.5
    assert mesh.volume > 0 and abs(mesh.volume - expected) / expected < 0.05  # outward normals, right size


def test_frame_conversion():
    assert np.allclose(SHAP_E_TO_GLTF @ SHAP_E_TO_GLTF.T, np.eye(3)) and np.isclose(np.linalg.det(SHAP_E_TO_GLTF), 1)
    pts = np.array([[0, 0, 1.0],    # Shap-E up      -> glTF up (+y)
                    [0, -1.0, 0],   # towards viewer -> glTF front (+z)
                    [1.0, 0, 0]])   # right          -> right (+x)
    np.testing.assert_allclose(shap_e_to_gltf(pts), [[0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_meshes_per_instance(gen):
    n_per = gen.cfg.latents_per_image
    imgs = _images(3)
    grey = np.full((40, 40, 3), 128, np.uint8)
    out = gen.generate([imgs[:2], [imgs[2]], [grey]], seed=5)
    assert [len(m) for m in out] == [2 * n_per, n_per, n_per]
    for meshes in out:
        for mesh in meshes:
            assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) > 0
            assert mesh.vertices.dtype == np.float64 and np.all(np.abs(mesh.vertices) <= 1.0 + 1e-6)
            assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
            colors = mesh.visual.vertex_colors
            assert colors.shape == (len(mesh.vertices), 4) and colors.dtype == np.uint8
    flat = [m for meshes in out for m in meshes]
    # each latent gives its own surface
    assert len({(len(m.vertices), round(float(m.vertices.sum()), 4)) for m in flat}) == len(flat)
    assert gen.generate([], seed=0) == [] and gen.generate([[]], seed=0) == [[]]


def test_deterministic_under_seed(gen):
    imgs = [_images(1, seed=3)]
    a, b, c = gen.generate(imgs, seed=1), gen.generate(imgs, seed=1), gen.generate(imgs, seed=2)
    np.testing.assert_array_equal(a[0][0].vertices, b[0][0].vertices)
    assert a[0][0].vertices.shape != c[0][0].vertices.shape or not np.allclose(a[0][0].vertices, c[0][0].vertices)


def test_latent_shape(gen):
    lat = gen.latents(_images(2), seed=0)
    prior = gen.pipe.prior.config
    assert lat.shape == (2 * gen.cfg.latents_per_image, prior.num_embeddings, prior.embedding_dim)
    assert torch.isfinite(lat).all() and lat.abs().max() < 1.5  # Heun clips its x0 estimates to [-1, 1]


@pytest.mark.real_weights
def test_real_weights_fast_profile(require_weights):
    cfg = load_profile("fast").generator
    require_weights(cfg, "generator", "fast")
    out = ShapEGenerator(cfg, profile="fast").generate([_images(1, s=256)], seed=0)
    assert len(out[0]) == cfg.latents_per_image


def test_latent_without_surface_is_dropped():
    gen = ShapEGenerator(load_profile("smoke").generator, profile="smoke", device="cpu")
    gen.load()
    with torch.no_grad():
        gen.pipe.shap_e_renderer.mlp.mlp[-1].bias[0] = -100.0  # the SDF is negative (outside) everywhere
    assert gen.decode(torch.zeros(32, 16)) is None
    assert gen.generate([_images(1)], seed=0) == [[]]
