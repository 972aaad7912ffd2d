"""`dpa-weights convert omnidata`: a random checkpoint in Omnidata's exact key layout → transformers DPT-Hybrid.

The checkpoint is built the way Omnidata builds its model: timm's hybrid ViT (a ResNetV2 'same'
stem + stages under ``patch_embed.backbone``, ViT blocks with a fused ``attn.qkv``) as
``pretrained.model``, and MiDaS's DPT modules (``pretrained.act_postprocess*``, ``scratch.*``) with
Omnidata's shapes, saved as a Lightning checkpoint ``{"state_dict": {"model.<key>": tensor}}``.
Small widths keep it fast; the key names and the structure are those of the real checkpoint.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from dpa_ros.cli import weights as weights_cli
from dpa_ros.priors.base import ReconstructionError
from dpa_ros.priors.config import DepthConfig
from dpa_ros.priors.depth import MonocularDepth
from dpa_ros.priors.omnidata import convert_omnidata

HIDDEN, LAYERS, HEADS, FUSION, IMAGE = 64, 4, 2, 32, 64
timm = pytest.importorskip("timm", reason="timm builds the ViT-hybrid whose key layout Omnidata checkpoints use")


def _fusion_block(features: int) -> nn.Module:
    block = nn.Module()
    block.out_conv = nn.Conv2d(features, features, 1)
    for unit in ("resConfUnit1", "resConfUnit2"):
        rcu = nn.Module()
        rcu.conv1 = nn.Conv2d(features, features, 3, padding=1)
        rcu.conv2 = nn.Conv2d(features, features, 3, padding=1)
        setattr(block, unit, rcu)
    return block


def omnidata_model(seed: int = 0) -> nn.Module:
    """The module tree of Omnidata's ``DPTDepthModel(backbone="vitb_rn50_384")`` at small widths."""
    from timm.models import vision_transformer_hybrid as hybrid
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    model = nn.Module()
    model.pretrained = nn.Module()
    model.pretrained.model = VisionTransformer(
        img_size=IMAGE, patch_size=1, embed_dim=HIDDEN, depth=LAYERS, num_heads=HEADS, mlp_ratio=1.5,
        embed_layer=partial(hybrid.HybridEmbed, backbone=hybrid._resnetv2(layers=(1, 1, 1))))
    model.pretrained.act_postprocess1 = nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())
    model.pretrained.act_postprocess2 = nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())
    for tap in (3, 4):
        readout = nn.Module()
        readout.project = nn.Sequential(nn.Linear(2 * HIDDEN, HIDDEN), nn.GELU())
        layers = [readout, nn.Identity(), nn.Identity(), nn.Conv2d(HIDDEN, HIDDEN, 1)]
        if tap == 4:
            layers.append(nn.Conv2d(HIDDEN, HIDDEN, 3, stride=2, padding=1))
        setattr(model.pretrained, f"act_postprocess{tap}", nn.Sequential(*layers))
    model.scratch = nn.Module()
    for i, width in enumerate((256, 512, HIDDEN, HIDDEN), start=1):  # BiT stages 1-2, ViT taps 3-4
        setattr(model.scratch, f"layer{i}_rn", nn.Conv2d(width, FUSION, 3, padding=1, bias=False))
        setattr(model.scratch, f"refinenet{i}", _fusion_block(FUSION))
    model.scratch.output_conv = nn.Sequential(nn.Conv2d(FUSION, FUSION // 2, 3, padding=1), nn.Identity(),
                                              nn.Conv2d(FUSION // 2, 32, 3, padding=1), nn.ReLU(True),
                                              nn.Conv2d(32, 1, 1), nn.ReLU(True), nn.Identity())
    return model


@pytest.fixture(scope="module")
def omnidata_ckpt(tmp_path_factory):
    model = omnidata_model()
    sd = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("omnidata") / "omnidata_dpt_depth_v2.ckpt"
    torch.save({"state_dict": sd, "epoch": 3}, path)
    return path, model


def test_convert_maps_every_tensor_and_loads_with_the_depth_adapter(tmp_path, omnidata_ckpt):
    path, source = omnidata_ckpt
    out = tmp_path / "weights" / "EPFL-VILAB--omnidata-dpt-hybrid-depth"
    assert weights_cli.main(["convert", "omnidata", str(path), str(out), "--num-heads", str(HEADS)]) == 0
    section = yaml.safe_load((out / "dpa_profile.yaml").read_text())["depth"]
    assert section["output"] == "depth" and section["model_id"] == "EPFL-VILAB/omnidata-dpt-hybrid-depth"
    depth = MonocularDepth(DepthConfig.from_dict(section, "depth"), profile="paper", weights_dir=tmp_path / "weights",
                           device="cpu")
    depth.load()
    got = depth.model.state_dict()
    ref = source.state_dict()
    n_source = len([k for k in ref if not k.startswith("pretrained.model.head.")])
    n_qkv = 2 * LAYERS  # each qkv weight and bias becomes three tensors
    assert len(got) == n_source + 2 * n_qkv  # every tensor mapped; nothing of the model left unset
    qkv_w, qkv_b = ref["pretrained.model.blocks.1.attn.qkv.weight"], ref["pretrained.model.blocks.1.attn.qkv.bias"]
    for i, part in enumerate(("query", "key", "value")):
        rows = slice(i * HIDDEN, (i + 1) * HIDDEN)
        torch.testing.assert_close(got[f"dpt.encoder.layer.1.attention.attention.{part}.weight"], qkv_w[rows])
        torch.testing.assert_close(got[f"dpt.encoder.layer.1.attention.attention.{part}.bias"], qkv_b[rows])
    pairs = {"neck.fusion_stage.layers.0.projection.weight": "scratch.refinenet4.out_conv.weight",
             "neck.fusion_stage.layers.3.residual_layer2.convolution1.bias":
                 "scratch.refinenet1.resConfUnit2.conv1.bias",
             "neck.convs.2.weight": "scratch.layer3_rn.weight",
             "neck.reassemble_stage.readout_projects.3.0.weight": "pretrained.act_postprocess4.0.project.0.weight",
             "neck.reassemble_stage.layers.3.resize.weight": "pretrained.act_postprocess4.4.weight",
             "head.head.4.weight": "scratch.output_conv.4.weight",
             "dpt.embeddings.backbone.bit.embedder.convolution.weight":
                 "pretrained.model.patch_embed.backbone.stem.conv.weight",
             "dpt.embeddings.backbone.bit.encoder.stages.2.layers.0.downsample.norm.bias":
                 "pretrained.model.patch_embed.backbone.stages.2.blocks.0.downsample.norm.bias",
             "dpt.embeddings.position_embeddings": "pretrained.model.pos_embed",
             "dpt.layernorm.weight": "pretrained.model.norm.weight"}
    for theirs, ours in pairs.items():
        torch.testing.assert_close(got[theirs], ref[ours], msg=theirs)
    pred = depth.predict(np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert pred.shape == (50, 70) and np.all(np.isfinite(pred))


def test_converted_vit_block_computes_what_the_timm_block_computes(tmp_path, omnidata_ckpt):
    """The q/k/v split, the norms and the BiT stem/stages land where transformers reads them: same input,
    same output (a ViT block; the whole ResNet backbone)."""
    path, source = omnidata_ckpt
    report = convert_omnidata(path, tmp_path / "org" / "omni", num_attention_heads=HEADS)
    assert report["model_id"] == "org/omni" and report["weights_dir"] == tmp_path.resolve()
    assert report["dropped"] == ["pretrained.model.head.weight", "pretrained.model.head.bias"]
    from transformers import DPTForDepthEstimation

    model = DPTForDepthEstimation.from_pretrained(tmp_path / "org" / "omni", local_files_only=True).eval()
    x = torch.randn(1, (IMAGE // 16) ** 2 + 1, HIDDEN, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs = source.pretrained.model.blocks[2](x)
        ours = model.dpt.encoder.layer[2](x)
    ours = ours[0] if isinstance(ours, tuple) else ours
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    image = torch.randn(1, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = source.pretrained.model.patch_embed.backbone(image)
        ours = model.dpt.embeddings.backbone(image).feature_maps[-1]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_a_checkpoint_of_another_layout_is_refused(tmp_path, omnidata_ckpt):
    path, source = omnidata_ckpt
    sd = {f"model.{k}": v for k, v in source.state_dict().items()}
    odd = dict(sd, **{"model.scratch.extra_conv.weight": torch.zeros(1)})
    torch.save({"state_dict": odd}, tmp_path / "odd.ckpt")
    with pytest.raises(ReconstructionError, match="not an Omnidata DPT-Hybrid key: 'scratch.extra_conv.weight'"):
        convert_omnidata(tmp_path / "odd.ckpt", tmp_path / "a--b", num_attention_heads=HEADS)
    partial_sd = {k: v for k, v in sd.items() if "refinenet2.out_conv" not in k}
    torch.save({"state_dict": partial_sd}, tmp_path / "partial.ckpt")
    with pytest.raises(ReconstructionError, match=r"missing \['neck.fusion_stage.layers.2.projection"):
        convert_omnidata(tmp_path / "partial.ckpt", tmp_path / "a--c", num_attention_heads=HEADS)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert weights_cli.main(["convert", "omnidata", str(tmp_path / "junk.ckpt"), str(tmp_path / "a--d")]) == 2
