"""Omnidata's DPT-Hybrid depth checkpoint → a transformers ``DPTForDepthEstimation`` directory.

The paper's depth prior is Omnidata's DPT-Hybrid (``omnidata_dpt_depth_v2.ckpt``, CC-BY-NC 4.0:
non-commercial use only; download it from the Omnidata project yourself). Omnidata trains MiDaS's
DPT code: a timm ``vit_base_resnet50_384`` (BiT ResNet stem + ViT-B/16) under ``pretrained.model``,
the readout/reassemble layers under ``pretrained.act_postprocess{1..4}``, and the fusion neck and
depth head under ``scratch``. Its Lightning checkpoint stores them as ``{"state_dict": {"model.<key>":
tensor}}``. It predicts relative *depth* (not MiDaS's inverse depth), so the profile section this
writes says ``output: depth``.

:func:`convert_omnidata` renames every key to transformers' DPT-Hybrid names, splits each fused
``attn.qkv`` projection into query, key and value (rows 0:H, H:2H, 2H:3H), builds the config in the
DPT-Hybrid MiDaS layout (hybrid BiT backbone, reassemble factors 1, 1, 1, 0.5, project readout, no
batch norm in the fusion blocks, no auxiliary head; sizes read off the tensors) and loads the result
strictly: a key that maps nowhere, or a model weight nothing maps to, is an error naming them. The
only keys dropped are the ImageNet classifier of the timm ViT (``pretrained.model.head.*``), which
depth estimation never uses.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from dpa_ros.priors.base import ReconstructionError

#: the keys :func:`rename_key` drops: timm's ImageNet classifier head
DROPPED = re.compile(r"^pretrained\.model\.head\.")

_RULES: tuple[tuple[str, str], ...] = (
    # ViT embeddings
    (r"^pretrained\.model\.cls_token$", "dpt.embeddings.cls_token"),
    (r"^pretrained\.model\.pos_embed$", "dpt.embeddings.position_embeddings"),
    (r"^pretrained\.model\.patch_embed\.proj\.", "dpt.embeddings.projection."),
    # BiT (timm ResNetV2) backbone of the hybrid embedding
    (r"^pretrained\.model\.patch_embed\.backbone\.stem\.conv\.", "dpt.embeddings.backbone.bit.embedder.convolution."),
    (r"^pretrained\.model\.patch_embed\.backbone\.stem\.norm\.", "dpt.embeddings.backbone.bit.embedder.norm."),
    (r"^pretrained\.model\.patch_embed\.backbone\.stages\.(\d+)\.blocks\.(\d+)\.",
     r"dpt.embeddings.backbone.bit.encoder.stages.\1.layers.\2."),
    # ViT blocks (qkv is split later)
    (r"^pretrained\.model\.blocks\.(\d+)\.norm1\.", r"dpt.encoder.layer.\1.layernorm_before."),
    (r"^pretrained\.model\.blocks\.(\d+)\.norm2\.", r"dpt.encoder.layer.\1.layernorm_after."),
    (r"^pretrained\.model\.blocks\.(\d+)\.attn\.qkv\.", r"dpt.encoder.layer.\1.attn.qkv."),
    (r"^pretrained\.model\.blocks\.(\d+)\.attn\.proj\.", r"dpt.encoder.layer.\1.attention.output.dense."),
    (r"^pretrained\.model\.blocks\.(\d+)\.mlp\.fc1\.", r"dpt.encoder.layer.\1.intermediate.dense."),
    (r"^pretrained\.model\.blocks\.(\d+)\.mlp\.fc2\.", r"dpt.encoder.layer.\1.output.dense."),
    (r"^pretrained\.model\.norm\.", "dpt.layernorm."),
    # reassemble: readout projections and resize convolutions of the two ViT taps (3 and 4)
    (r"^pretrained\.act_postprocess([34])\.0\.project\.0\.", "neck.reassemble_stage.readout_projects.{tap}.0."),
    (r"^pretrained\.act_postprocess([34])\.3\.", "neck.reassemble_stage.layers.{tap}.projection."),
    (r"^pretrained\.act_postprocess4\.4\.", "neck.reassemble_stage.layers.3.resize."),
    # neck
    (r"^scratch\.layer([1-4])_rn\.", "neck.convs.{rn}."),
    (r"^scratch\.refinenet([1-4])\.out_conv\.", "neck.fusion_stage.layers.{fusion}.projection."),
    (r"^scratch\.refinenet([1-4])\.resConfUnit([12])\.conv([12])\.",
     "neck.fusion_stage.layers.{fusion}.residual_layer{unit}.convolution{conv}."),
    # depth head: Conv, Interpolate, Conv, ReLU, Conv, ReLU (same indices)
    (r"^scratch\.output_conv\.([024])\.", r"head.head.\1."),
)


def rename_key(key: str) -> str | None:
    """Transformers' name of one Omnidata key (``model.`` prefix already removed); None when dropped.

    Raises :class:`ReconstructionError` for a key no rule knows (not a DPT-Hybrid checkpoint).
    """
    if DROPPED.match(key):
        return None
    for pattern, target in _RULES:
        m = re.match(pattern, key)
        if not m:
            continue
        rest = key[m.end():]
        if "{" in target:
            g = m.groups()
            fields = {"tap": int(g[0]) - 1, "rn": int(g[0]) - 1, "fusion": 4 - int(g[0])}
            if len(g) == 3:
                fields.update(unit=g[1], conv=g[2])
            return target.format(**fields) + rest
        return m.expand(target) + rest
    raise ReconstructionError(f"not an Omnidata DPT-Hybrid key: '{key}'")


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The model tensors of an Omnidata checkpoint (Lightning ``state_dict`` with ``model.`` prefixes, or plain)."""
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file, a pickle that is not a state dict, ...
        raise ReconstructionError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not sd:
        raise ReconstructionError(f"checkpoint {path} holds no state dict")
    return {(k[len("model."):] if k.startswith("model.") else k): v for k, v in sd.items()
            if isinstance(v, torch.Tensor)}


def _count(sd: dict, pattern: str) -> int:
    return len({m.group(1) for k in sd if (m := re.match(pattern, k))})


def dpt_hybrid_config(sd: dict[str, torch.Tensor], num_attention_heads: int | None = None, num_groups: int = 32):
    """A ``DPTConfig`` in the DPT-Hybrid MiDaS layout with the sizes of the Omnidata state dict ``sd``.

    Sizes are read off the tensors (hidden size, layers, MLP width, image size from the position
    embeddings, BiT depths and widths, neck and fusion widths). Two numbers are not in any tensor:
    ``num_attention_heads`` (default hidden size / 64: 12 for ViT-B) and the BiT GroupNorm ``num_groups``
    (32 in timm's ResNetV2).
    """
    from transformers import BitConfig, DPTConfig

    try:
        hidden = sd["pretrained.model.cls_token"].shape[-1]
        tokens = sd["pretrained.model.pos_embed"].shape[1] - 1
        layers = _count(sd, r"^pretrained\.model\.blocks\.(\d+)\.")
        mlp = sd["pretrained.model.blocks.0.mlp.fc1.weight"].shape[0]
        stages = _count(sd, r"^pretrained\.model\.patch_embed\.backbone\.stages\.(\d+)\.")
        depths = [_count(sd, rf"^pretrained\.model\.patch_embed\.backbone\.stages\.{s}\.blocks\.(\d+)\.")
                  for s in range(stages)]
        widths = [sd[f"pretrained.model.patch_embed.backbone.stages.{s}.blocks.0.conv3.weight"].shape[0]
                  for s in range(stages)]
        stem = sd["pretrained.model.patch_embed.backbone.stem.conv.weight"].shape[0]
        neck = [sd[f"scratch.layer{i}_rn.weight"].shape[1] for i in range(1, 5)]
        fusion = sd["scratch.layer1_rn.weight"].shape[0]
    except KeyError as exc:
        raise ReconstructionError(f"not an Omnidata DPT-Hybrid checkpoint: no {exc}") from exc
    side = math.isqrt(tokens)
    if side * side != tokens or layers < 2:
        raise ReconstructionError(f"unexpected ViT shape: {tokens} patch tokens, {layers} layers")
    heads = num_attention_heads or max(1, hidden // 64)
    backbone = BitConfig(global_padding="same", layer_type="bottleneck", depths=depths, hidden_sizes=widths,
                         embedding_size=stem, num_groups=num_groups, embedding_dynamic_padding=True,
                         out_features=[f"stage{i}" for i in range(1, stages + 1)])
    # Omnidata's hooks: BiT stages 1 and 2, then ViT blocks 8 and 11 of 12 (the same relative
    # positions, L-4 and L-1, for other depths); transformers reads the ViT taps from indices [2:]
    vit_taps = [max(0, layers - 4), layers - 1]
    return DPTConfig(is_hybrid=True, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=mlp, image_size=side * 16, patch_size=16, backbone_config=backbone,
                     backbone_featmap_shape=[1, widths[-1], side, side], backbone_out_indices=[2, 5, *vit_taps],
                     neck_hidden_sizes=neck, fusion_hidden_size=fusion, reassemble_factors=[1, 1, 1, 0.5],
                     readout_type="project", use_batch_norm_in_fusion_residual=False, use_auxiliary_head=False,
                     head_in_index=-1)


def convert_state_dict(sd: dict[str, torch.Tensor], hidden_size: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Omnidata tensors under transformers' names (qkv split), and the keys dropped."""
    out, dropped = {}, []
    for key, value in sd.items():
        name = rename_key(key)
        if name is None:
            dropped.append(key)
            continue
        m = re.match(r"^(dpt\.encoder\.layer\.\d+)\.attn\.qkv\.(weight|bias)$", name)
        if m:
            if value.shape[0] != 3 * hidden_size:
                raise ReconstructionError(f"{key}: expected {3 * hidden_size} rows (q, k, v), got {value.shape[0]}")
            for i, part in enumerate(("query", "key", "value")):
                rows = slice(i * hidden_size, (i + 1) * hidden_size)
                out[f"{m.group(1)}.attention.attention.{part}.{m.group(2)}"] = value[rows]
            continue
        out[name] = value
    return out, dropped


def weights_location(out_dir: Path) -> tuple[str, Path]:
    """(model_id, weights_dir) under which :mod:`dpa_ros.priors.weights` finds ``out_dir``.

    ``<weights_dir>/<org>--<name>`` when the folder's name has ``--``, else ``<weights_dir>/<org>/<name>``
    with the parent folder as ``org``.
    """
    out_dir = out_dir.resolve()
    if "--" in out_dir.name:
        org, name = out_dir.name.split("--", 1)
        return f"{org}/{name}", out_dir.parent
    return f"{out_dir.parent.name}/{out_dir.name}", out_dir.parent.parent


def convert_omnidata(ckpt: str | Path, out_dir: str | Path, num_attention_heads: int | None = None,
                     num_groups: int = 32) -> dict:
    """Convert an Omnidata DPT-Hybrid depth checkpoint into a transformers directory ``out_dir``.

    Writes ``config.json``, ``model.safetensors``, ``preprocessor_config.json`` (384 px, mean = std =
    0.5 as Omnidata normalises) and ``dpa_profile.yaml``, a profile refinement selecting it as the
    ``depth`` model with ``output: depth``. Returns a report: ``model_id``, ``weights_dir``, ``tensors``
    (mapped), ``dropped`` (keys left out), ``profile`` (the YAML path).

    Raises :class:`ReconstructionError` when a key maps nowhere or a model weight stays unset.
    """
    from transformers import DPTForDepthEstimation, DPTImageProcessor

    sd = load_checkpoint(ckpt)
    config = dpt_hybrid_config(sd, num_attention_heads, num_groups)
    converted, dropped = convert_state_dict(sd, config.hidden_size)
    model = DPTForDepthEstimation(config).eval()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = sorted(k for k in set(expected) & set(converted) if expected[k].shape != converted[k].shape)
    if missing or unexpected or wrong:
        raise ReconstructionError(f"checkpoint {ckpt} does not fill DPT-Hybrid: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    model.load_state_dict(converted, strict=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    side = config.image_size
    DPTImageProcessor(size={"height": side, "width": side}, keep_aspect_ratio=False, do_pad=False,
                      image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]).save_pretrained(out)
    model_id, weights_dir = weights_location(out)
    profile = out / "dpa_profile.yaml"
    profile.write_text(
        "# Omnidata DPT-Hybrid depth (CC-BY-NC 4.0: non-commercial use only), converted by `dpa-weights convert`.\n"
        f"# Use: DPA_WEIGHTS_DIR={weights_dir} dpa-reconstruct --profile paper --config {profile} ...\n"
        "depth:\n  kind: dpt\n"
        f"  model_id: {model_id}\n"
        "  allow_patterns: [config.json, preprocessor_config.json, model.safetensors]\n"
        "  output: depth             # Omnidata predicts relative depth, not inverse depth\n")
    return {"model_id": model_id, "weights_dir": weights_dir, "tensors": len(converted), "dropped": dropped,
            "profile": profile}
