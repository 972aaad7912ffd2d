"""Builders of the ``smoke`` profile: tiny, randomly initialised instances of the real model classes.

Every builder constructs the same classes the ``paper``/``fast`` profiles load from weights
(transformers Grounding DINO, segment_anything Sam, diffusers Stable Diffusion img2img and Shap-E
img2img, open_clip, transformers DPT / Depth Anything), only with small sizes, from configs, in
process, seeded — no file and no download. Their outputs are meaningless; the code paths are real.

Tokenizers come from vocabularies written here (a WordPiece vocabulary for Grounding DINO's BERT, a
byte-level BPE vocabulary for Stable Diffusion's CLIP text encoder); open_clip's own BPE file ships
with open_clip. Sizes are chosen so that each model runs in well under a second on a laptop CPU.
"""
from __future__ import annotations

import json
import string
import tempfile
from functools import partial
from pathlib import Path

import torch

from dpa_ros.priors.marching_cubes import fill_mesh_decoder

#: Words the tiny WordPiece vocabulary knows whole; anything else is split into letters.
_WORDS = (
    "sofa chair table bed cabinet dresser ashcan television piano lamp cup mug plate bowl spoon "
    "bottle book monitor keyboard desk shelf door window plant person cat dog object thing"
).split()


def _seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def bert_vocab() -> dict[str, int]:
    """A WordPiece vocabulary: BERT's special tokens, punctuation, some category words, letters."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list(".,;:!?-'\"()")
    tokens += _WORDS
    tokens += list(string.ascii_lowercase + string.digits)
    tokens += ["##" + c for c in string.ascii_lowercase + string.digits]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def clip_bpe_vocab() -> tuple[dict[str, int], list[str]]:
    """A byte-level BPE vocabulary for ``CLIPTokenizer``: every byte, alone and word-final, no merges.

    Byte → unicode mapping is GPT-2's (the one CLIP's tokenizer uses), so any text tokenises.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, []


# --------------------------------------------------------------------------------------------
# Stage 1: Grounding DINO + Segment Anything


def grounding_dino(seed: int = 0, image_size: tuple[int, int] = (96, 160)):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor) with a 32-wide Swin/BERT.

    ``image_size`` is the processor's (shortest_edge, longest_edge) resize in pixels.
    """
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    _seed(seed)
    vocab = bert_vocab()
    tokenizer = BertTokenizer(vocab=vocab)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": image_size[0], "longest_edge": image_size[1]})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7,
                                   out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4]),
        text_config=BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=128),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=20, num_feature_levels=4, encoder_n_points=2,
        decoder_n_points=2, max_text_len=128, disable_custom_kernels=True, use_timm_backbone=False)
    model = GroundingDinoForObjectDetection(config).eval()
    return model, processor


def sam(seed: int = 0, img_size: int = 128):
    """A segment_anything ``Sam`` with a 1-block ViT encoder; ``img_size`` is its input side in pixels."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    _seed(seed)
    dim, patch = 16, 16
    encoder = ImageEncoderViT(img_size=img_size, patch_size=patch, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0,
                              out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                              use_rel_pos=True, window_size=4, global_attn_indexes=(0,))
    prompt = PromptEncoder(embed_dim=dim, image_embedding_size=(img_size // patch, img_size // patch),
                           input_image_size=(img_size, img_size), mask_in_chans=4)
    decoder = MaskDecoder(num_multimask_outputs=3,
                          transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=32, num_heads=2),
                          transformer_dim=dim, iou_head_depth=1, iou_head_hidden_dim=16)
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder).eval()


# --------------------------------------------------------------------------------------------
# Stage 2: Stable Diffusion img2img


def stable_diffusion_img2img(seed: int = 0):
    """A ``StableDiffusionImg2ImgPipeline`` with a 2-level 32/64 UNet, a 2× VAE and a 2-layer CLIP text encoder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    _seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=[16, 32], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=8)
    vocab, merges = clip_bpe_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    return sd_img2img_pipeline(unet, vae, text_encoder, tokenizer)


def sd_img2img_pipeline(unet, vae, text_encoder, tokenizer):
    """StableDiffusionImg2ImgPipeline from its parts, with SD's DDIM schedule and no safety checker."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------------------------
# Stage 3: OpenCLIP


def open_clip_model(seed: int = 0, image_size: int = 32):
    """(open_clip CLIP, its image preprocess) for a custom 2-layer ViT config registered under ``dpa-tiny-clip``."""
    import open_clip

    _seed(seed)
    name = f"dpa-tiny-clip-{image_size}"
    if name not in open_clip.list_models():
        cfg = {"embed_dim": 32,
               "vision_cfg": {"image_size": image_size, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
        folder = Path(tempfile.mkdtemp(prefix="dpa_open_clip_"))
        (folder / f"{name}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(folder)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    return model.eval(), preprocess


# --------------------------------------------------------------------------------------------
# Stage 4: Shap-E img2img


def _calibrate_sdf_bias(renderer, latent_shape: tuple[int, int], seed: int, inside_fraction: float = 0.3,
                        grid: int = 16) -> None:
    """Set the SDF output bias so that ``inside_fraction`` of a ``grid``³ lattice is inside for a reference latent.

    Mirrors the first steps of ``ShapERenderer.decode_to_mesh``: project the latent into the MLP's
    first layers, query the signed distance (tanh of the SDF row) at the lattice points.
    """
    from diffusers.pipelines.shap_e.renderer import volume_query_points

    gen = torch.Generator().manual_seed(seed)
    latent = torch.rand(1, *latent_shape, generator=gen) * 2 - 1  # Heun clips its x0 estimates to [-1, 1]
    device = next(renderer.parameters()).device
    latent = latent.to(device)
    with torch.no_grad():
        params = renderer.params_proj(latent)
        for name, param in renderer.mlp.state_dict().items():
            if f"nerstf.{name}" in params:
                param.copy_(params[f"nerstf.{name}"].squeeze(0))
        last = renderer.mlp.mlp[-1]
        last.bias[0] = 0.0
        pts = volume_query_points(renderer.volume, grid)[None].to(device)
        out = renderer.mlp(position=pts, direction=None, ts=None, nerf_level="fine", rendering_mode="stf")
        pre = torch.atanh(out.signed_distance.clamp(-0.999999, 0.999999)).flatten()
        last.bias[0] = -torch.quantile(pre, 1.0 - inside_fraction)


def shap_e_img2img(seed: int = 0, image_size: int = 32):
    """A ``ShapEImg2ImgPipeline`` with a 1-layer prior, a tiny CLIP vision encoder and an 8-wide renderer.

    Two things a config-built renderer lacks, both set here:

    * the marching-cubes lookup table (``renderer.mesh_decoder.cases``/``masks``) is a checkpoint
      buffer, all zeros when built from a config; it is filled from
      :mod:`dpa_ros.priors.marching_cubes`, otherwise every mesh would be empty;
    * with random weights the signed-distance head's output has no reason to cross zero inside
      the unit cube, so a latent may decode to no surface at all (diffusers' decoder then fails
      on an empty vertex list) or to the whole box. The bias of the SDF row of the renderer's
      last layer (a renderer-owned weight, not one the latent projects) is calibrated so that,
      for a reference latent drawn from ``seed``, ``inside_fraction`` of the decoding grid is
      inside: meshes are non-empty, seeded, and still shaped by the latent. This is a property
      of the smoke weights only.
    """
    from diffusers import PriorTransformer
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPVisionConfig, CLIPVisionModel

    _seed(seed)
    latent_dim, width = 16, 8
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=16, embedding_dim=latent_dim,
                             num_embeddings=4 * width, embedding_proj_dim=16, time_embed_dim=64, num_layers=1,
                             clip_embed_dim=2 * latent_dim, additional_embeddings=0, time_embed_act_fn="gelu",
                             norm_in_type="layer", embedding_proj_norm_type="layer", encoder_hid_proj_type=None,
                             added_emb_type=None)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=16, image_size=image_size, projection_dim=16,
                                                     intermediate_size=24, num_attention_heads=2, num_channels=3,
                                                     num_hidden_layers=1, patch_size=8))
    renderer = ShapERenderer(param_names=("nerstf.mlp.0.weight", "nerstf.mlp.1.weight", "nerstf.mlp.2.weight",
                                          "nerstf.mlp.3.weight"),
                             param_shapes=((width, 93), (width, width), (width, width), (width, width)),
                             d_latent=latent_dim, d_hidden=width, n_output=12, background=(0.1, 0.1, 0.1))
    fill_mesh_decoder(renderer.mesh_decoder)
    _calibrate_sdf_bias(renderer, (4 * width, latent_dim), seed)
    return shap_e_img2img_pipeline(prior, image_encoder, renderer, image_size)


def shap_e_img2img_pipeline(prior, image_encoder, renderer, image_size: int):
    """ShapEImg2ImgPipeline from its parts, with Shap-E's CLIP preprocessing and Karras-Heun schedule."""
    from diffusers import HeunDiscreteScheduler, ShapEImg2ImgPipeline
    from transformers import CLIPImageProcessor

    image_processor = CLIPImageProcessor(crop_size=image_size, do_center_crop=True, do_normalize=True, do_resize=True,
                                         image_mean=[0.48145466, 0.4578275, 0.40821073],
                                         image_std=[0.26862954, 0.26130258, 0.27577711], resample=3, size=image_size)
    scheduler = HeunDiscreteScheduler(beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample",
                                      use_karras_sigmas=True, clip_sample=True, clip_sample_range=1.0)
    pipe = ShapEImg2ImgPipeline(prior=prior, image_encoder=image_encoder, image_processor=image_processor,
                                shap_e_renderer=renderer, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------------------------
# Stage 5: monocular depth


def dpt_hybrid(seed: int = 0, image_size: int = 64):
    """A ``DPTForDepthEstimation`` in the DPT-Hybrid layout (BiT ResNet stem + ViT), as Omnidata's depth model.

    Returns (model, image processor); the processor resizes to ``image_size`` × ``image_size`` pixels.
    """
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    _seed(seed)
    backbone = BitConfig(global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[8, 16, 32],
                         embedding_dynamic_padding=True, out_features=["stage1", "stage2", "stage3"], num_groups=2)
    config = DPTConfig(image_size=image_size, patch_size=16, hidden_size=32, num_hidden_layers=4,
                       backbone_out_indices=[0, 1, 2, 3], num_attention_heads=2, intermediate_size=37, is_hybrid=True,
                       backbone_config=backbone, backbone_featmap_shape=[1, 32, image_size // 16, image_size // 16],
                       neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, reassemble_factors=[1, 1, 1, 0.5],
                       use_auxiliary_head=False, head_in_index=-1)
    processor = DPTImageProcessor(size={"height": image_size, "width": image_size}, keep_aspect_ratio=False,
                                  ensure_multiple_of=1, do_pad=False)
    return DPTForDepthEstimation(config).eval(), processor


def depth_anything(seed: int = 0, image_size: int = 56, metric: bool = False):
    """A ``DepthAnythingForDepthEstimation`` with a 4-layer DINOv2 backbone; (model, image processor).

    ``metric`` builds the metric-depth head of the Depth Anything V2 Metric models (sigmoid output
    scaled to ``max_depth`` = 20 m, as the Metric-Indoor checkpoints are configured) instead of the
    relative (ReLU) one.
    """
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    _seed(seed)
    backbone = Dinov2Config(image_size=image_size, patch_size=14, hidden_size=32, num_hidden_layers=4,
                            num_attention_heads=2, intermediate_size=37, out_features=["stage1", "stage2", "stage3",
                                                                                       "stage4"],
                            reshape_hidden_states=False, apply_layernorm=True)
    head = dict(depth_estimation_type="metric", max_depth=20) if metric else {}
    config = DepthAnythingConfig(backbone_config=backbone, patch_size=14, reassemble_hidden_size=32,
                                 neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8, **head)
    processor = DPTImageProcessor(size={"height": image_size, "width": image_size}, keep_aspect_ratio=False,
                                  ensure_multiple_of=14, do_pad=False)
    return DepthAnythingForDepthEstimation(config).eval(), processor
