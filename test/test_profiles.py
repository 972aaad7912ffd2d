"""Typed profiles: every key checked once, a misspelt one named with the nearest valid key."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from dpa_ros.cli import weights as weights_cli
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.priors.base import ReconstructionError
from dpa_ros.priors.config import Profile, ProfileError, SegmenterConfig
from dpa_ros.priors.profiles import PROFILE_NAMES, load_profile
from dpa_ros.priors.segmenter import GroundedSAM

ROOT = Path(__file__).resolve().parents[1]


def _refine(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "refine.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,message", [
    ("segmenter:\n  box_treshold: 0.2\n", "segmenter.box_treshold: unknown key (did you mean 'box_threshold'?)"),
    ("segmentor:\n  box_threshold: 0.2\n", "segmentor: unknown key (did you mean 'segmenter'?)"),
    ("depth:\n  metric_model:\n    outptu: metric\n",
     "depth.metric_model.outptu: unknown key (did you mean 'output'?)"),
    ("enhancer:\n  candiates: 3\n", "enhancer.candiates: unknown key (did you mean 'candidates'?)"),
    ("layout:\n  iteratons: 3\n", "layout.iteratons: unknown key (did you mean 'iterations'?)"),
    ("scorer:\n  zzz: 1\n", "scorer.zzz: unknown key (valid keys: allow_patterns, arch,"),
])
def test_a_misspelt_key_is_an_error_naming_it(tmp_path, text, message):
    with pytest.raises(ProfileError) as info:
        load_profile("paper", config_path=_refine(tmp_path, text))
    assert str(info.value).startswith(f"profile 'paper': {message}")
    assert isinstance(info.value, ReconstructionError) and "\n" not in str(info.value)


@pytest.mark.parametrize("text,message", [
    ("enhancer:\n  candidates: six\n", "enhancer.candidates: expected an integer, got 'six'"),
    ("segmenter:\n  box_threshold: 1.5\n", "segmenter.box_threshold must be in [0, 1], got 1.5"),
    ("scorer:\n  keep_original: 'yes'\n", "scorer.keep_original: expected true or false"),
    ("depth:\n  kind: zoedepth\n", "depth.kind must be one of dpt, depth_anything, got 'zoedepth'"),
    ("generator:\n  allow_patterns: 'prior/*'\n", "generator.allow_patterns: expected a list"),
    ("layout:\n  restarts: 0\n", "layout: layout config needs restarts >= 1"),
    ("depth:\n  metric_model: {kind: dpt, model_id: a/b, output: depth}\n",
     "depth.metric_model.output must be metric, got 'depth'"),
])
def test_a_bad_value_is_an_error_naming_the_key(tmp_path, text, message):
    with pytest.raises(ProfileError, match="^profile 'paper': " + message.replace("[", r"\[").replace("(", r"\(")):
        load_profile("paper", config_path=_refine(tmp_path, text))


def test_shipped_profiles_are_typed_frozen_and_validated_once():
    for name in PROFILE_NAMES:
        prof = load_profile(name)
        assert isinstance(prof, Profile) and isinstance(prof.layout, LayoutConfig)
        with pytest.raises(dataclasses.FrozenInstanceError):
            prof.segmenter.box_threshold = 0.9
        assert Profile.from_dict(prof.to_dict()) == prof  # plain data round trip
    assert load_profile("paper").depth.metric_model.output == "metric"
    assert load_profile("fast").depth.metric_model.model_id == "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"


def test_every_layout_config_field_is_a_valid_profile_key():
    """Fields are taken from LayoutConfig itself: one added there is accepted here unchanged."""
    layout = {f.name: getattr(LayoutConfig(), f.name) for f in dataclasses.fields(LayoutConfig)}
    prof = load_profile("smoke", overrides={"layout": layout})
    assert prof.layout == LayoutConfig(**layout)


def test_one_place_defines_the_segmenter_defaults():
    """The dataclass defaults are what an adapter uses when a profile leaves a key out."""
    seg = GroundedSAM({"detector": {"source": "tiny"}, "sam": {"source": "tiny"}}, device="cpu")
    assert (seg.cfg.box_threshold, seg.cfg.text_threshold, seg.cfg.keep_threshold) == (0.3, 0.25, 0.4)
    assert SegmenterConfig.box_threshold == 0.3 and load_profile("paper").segmenter == load_profile(
        "paper", overrides={"segmenter": {"box_threshold": SegmenterConfig.box_threshold}}).segmenter
    seg.set_thresholds(box_threshold=0.5)
    assert seg.cfg.box_threshold == 0.5
    with pytest.raises(ProfileError, match="keep_threshold must be in"):
        seg.set_thresholds(keep_threshold=2.0)


def test_command_lines_report_a_misspelt_key_in_one_line(tmp_path, capsys):
    bad = _refine(tmp_path, "base: smoke\nenhancer:\n  stpes: 3\n")
    assert weights_cli.main(["check", "--profile", "smoke", "--config", str(bad)]) == 2
    assert "enhancer.stpes: unknown key (did you mean 'steps'?)" in capsys.readouterr().err
    camera = tmp_path / "cam.yaml"
    camera.write_text("image_width: 64\nimage_height: 48\n"
                      "camera_matrix: {rows: 3, cols: 3, data: [50, 0, 32, 0, 50, 24, 0, 0, 1]}\n"
                      "distortion_model: plumb_bob\n"
                      "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n")
    proc = subprocess.run([sys.executable, "-m", "dpa_ros.cli.reconstruct",
                           "--image", str(ROOT / "test" / "assets" / "coffee.png"),
                           "--camera-info", str(camera), "--profile", "smoke", "--config", str(bad),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0
    assert "enhancer.stpes: unknown key (did you mean 'steps'?)" in proc.stderr.strip().splitlines()[-1]


def test_layout_config_is_frozen_and_checked_once_on_construction():
    """A LayoutConfig that exists is valid: it cannot be changed in place, and a replace() or a
    profile's ``layout:`` section with a bad value fails where it is made, naming the setting."""
    cfg = load_profile("smoke").layout
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.restarts = 0
    with pytest.raises(ValueError, match=r"^layout config needs restarts >= 1"):
        dataclasses.replace(cfg, restarts=0)
    with pytest.raises(ValueError, match=r"^layout dof must be 'auto', '5' or '7', got '6'"):
        LayoutConfig(dof="6")
    with pytest.raises(ProfileError, match=r"layout: layout config needs restarts >= 1"):
        load_profile("smoke", overrides={"layout": {"restarts": 0}})


def test_a_moved_layout_key_still_loads_with_a_warning_naming_its_new_place(tmp_path):
    """``layout.depth_smoothing`` moved to ``targets.depth_smoothing`` (the assembler reads it): an old
    file loads, its value read as the new key; both in one file is an error naming both."""
    old = _refine(tmp_path, "layout:\n  depth_smoothing: 3\n  restarts: 4\n")
    with pytest.warns(FutureWarning, match=r"layout\.depth_smoothing is deprecated .* to targets\.depth_smoothing"):
        prof = load_profile("smoke", config_path=old)
    assert prof.targets.depth_smoothing == 3 and prof.layout.restarts == 4
    assert prof == load_profile("smoke", overrides={"layout": {"restarts": 4}, "targets": {"depth_smoothing": 3}})
    assert load_profile("smoke").targets.depth_smoothing == 5
    both = _refine(tmp_path, "layout:\n  depth_smoothing: 3\ntargets:\n  depth_smoothing: 2\n")
    with pytest.raises(ProfileError, match=r"layout\.depth_smoothing moved to targets\.depth_smoothing, and both are "
                                           r"set: keep only targets\.depth_smoothing"):
        load_profile("smoke", config_path=both)


def test_block_elements_is_ignored_in_a_profile_with_a_warning():
    """``layout.block_elements`` sized only the legacy solver's blocks (now its own argument)."""
    with pytest.warns(FutureWarning, match=r"layout\.block_elements is ignored .*solve_layout_legacy"):
        prof = load_profile("smoke", overrides={"layout": {"block_elements": 4096}})
    assert prof == load_profile("smoke")
