"""OpenCLIP scorer adapter (stage 3) with the smoke profile's tiny open_clip ViT."""
import copy

import numpy as np
import pytest

from dpa_ros.priors.profiles import load_profile
from dpa_ros.priors.scorer import ClipScorer


@pytest.fixture(scope="module")
def scorer():
    sc = ClipScorer(load_profile("smoke").scorer, profile="smoke", device="cpu")
    sc.load()
    return sc


def _images(n, m, s=48, seed=0):
    rng = np.random.default_rng(seed)
    originals = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for _ in range(n)]
    cands = rng.integers(0, 256, (n, m, s, s, 3), dtype=np.uint8)
    return originals, cands


def test_embeddings(scorer):
    originals, _ = _images(3, 0)
    grey = np.full((48, 48, 3), 128, np.uint8)
    emb = scorer.embed(originals + [grey, originals[0].copy()])
    assert emb.dtype == np.float32 and emb.shape[0] == 5 and emb.shape[1] > 0
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb[0], emb[4], atol=1e-6)  # same image, same embedding
    assert not np.allclose(emb[0], emb[1])


def test_select_top_k(scorer):
    originals, cands = _images(2, 4)
    cands[1, 2] = originals[1]  # an exact copy must score 1 and be kept right after the original
    kept, sims = scorer.select(originals, cands)
    k = scorer.cfg.top_k
    assert sims.shape == (2, 5) and sims.dtype == np.float32
    assert np.all(sims <= 1 + 1e-5) and np.all(sims >= -1 - 1e-5)
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    assert [len(x) for x in kept] == [k, k]
    assert kept[0][0] is originals[0]  # keep_original: the crop competes and wins
    np.testing.assert_array_equal(kept[1][1], originals[1])
    best = int(np.argmax(sims[0, 1:])) + 1
    np.testing.assert_array_equal(kept[0][1], cands[0, best - 1])


def test_select_without_original_and_without_candidates(scorer):
    originals, cands = _images(1, 3)
    view = copy.copy(scorer)  # same resident model, other settings
    view.cfg = scorer.cfg.replace(keep_original=False, top_k=2)
    kept, sims = view.select(originals, cands)
    assert len(kept[0]) == 2 and all(img is not originals[0] for img in kept[0])
    kept, sims = scorer.select(originals, cands[:, :0])  # M = 0: the crop is the only candidate
    assert sims.shape == (1, 1) and len(kept[0]) == 1 and kept[0][0] is originals[0]
    kept, sims = scorer.select([], np.zeros((0, 3, 8, 8, 3), np.uint8))
    assert kept == [] and sims.shape == (0, 4)


def test_deterministic_under_seed(scorer):
    other = ClipScorer(load_profile("smoke").scorer, profile="smoke", device="cpu")
    originals, cands = _images(1, 2)
    np.testing.assert_array_equal(scorer.select(originals, cands)[1], other.select(originals, cands)[1])


@pytest.mark.real_weights
def test_real_weights_fast_profile(require_weights):
    cfg = load_profile("fast").scorer
    require_weights(cfg, "scorer", "fast")
    originals, cands = _images(1, 2, s=224)
    kept, sims = ClipScorer(cfg, profile="fast").select(originals, cands)
    assert sims.shape == (1, 3) and len(kept[0]) == cfg.top_k
