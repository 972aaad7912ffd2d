"""The ``paper``/``fast`` architectures at their real sizes, randomly initialised (``source: random``).

For benchmarking speed where the weights are absent: run time does not depend on weight values, so
``bench/pipeline.py --random-weights`` times exactly the networks the real profiles run. Configs
follow the published checkpoints (Grounding DINO Swin-B/Swin-T, SAM ViT-H/ViT-B, SD 2.1 at 512 px,
OpenCLIP ViT-H-14/ViT-B-32, Shap-E img2img, DPT-Hybrid, Depth Anything V2 Small). Tokenizers are the
small ones of :mod:`dpa_ros.priors.tiny` (sequence lengths, not vocabularies, set the cost).
Outputs are meaningless; models are built directly on ``device``.
"""
from __future__ import annotations

import torch

from dpa_ros.priors import tiny
from dpa_ros.priors.marching_cubes import fill_mesh_decoder


def grounding_dino(variant: str = "base", device: str | torch.device = "cpu"):
    """(GroundingDinoForObjectDetection, processor): Swin-B (``base``) or Swin-T (``tiny``) + BERT-base."""
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    swin = (dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12, image_size=384)
            if variant == "base" else dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7))
    config = GroundingDinoConfig(backbone_config=SwinConfig(out_features=["stage2", "stage3", "stage4"],
                                                            out_indices=[2, 3, 4], **swin),
                                 disable_custom_kernels=True, use_timm_backbone=False)
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                                       tokenizer=BertTokenizer(vocab=tiny.bert_vocab()))
    with torch.device(device):
        model = GroundingDinoForObjectDetection(config).eval()
    return model, processor


def sam(kind: str = "vit_h", device: str | torch.device = "cpu"):
    """segment_anything's ``Sam`` of ``kind`` (vit_h, vit_l, vit_b), random weights."""
    from segment_anything import sam_model_registry

    with torch.device(device):
        return sam_model_registry[kind](checkpoint=None).eval()


def stable_diffusion_img2img(device: str | torch.device = "cpu"):
    """``StableDiffusionImg2ImgPipeline`` with SD 2.1's UNet (865 M), VAE and OpenCLIP-H text encoder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = tiny.clip_bpe_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    with torch.device(device):
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
                                    use_linear_projection=True, block_out_channels=(320, 640, 1280, 1280))
        vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                            up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, layers_per_block=2,
                            sample_size=512)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
            hidden_act="gelu", projection_dim=1024, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    return tiny.sd_img2img_pipeline(unet, vae, text_encoder, tokenizer)


def open_clip_model(arch: str = "ViT-H-14", device: str | torch.device = "cpu"):
    """(open_clip model, preprocess) of a built-in architecture, random weights."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device=device)
    return model.eval(), preprocess


def shap_e_img2img(seed: int = 0, device: str | torch.device = "cpu"):
    """``ShapEImg2ImgPipeline`` at openai/shap-e-img2img's sizes (prior 24×1024, CLIP ViT-L/14 image encoder).

    As in :func:`dpa_ros.priors.tiny.shap_e_img2img`, the marching-cubes tables are filled and the SDF
    bias calibrated, so random latents decode to non-empty meshes of realistic vertex counts.
    """
    from diffusers import PriorTransformer
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    with torch.device(device):
        prior = PriorTransformer(num_attention_heads=16, attention_head_dim=64, num_layers=24, embedding_dim=1024,
                                 num_embeddings=1024, additional_embeddings=0, time_embed_act_fn="gelu",
                                 norm_in_type="layer", embedding_proj_norm_type="layer", encoder_hid_proj_type=None,
                                 added_emb_type=None, time_embed_dim=4096, embedding_proj_dim=1024,
                                 clip_embed_dim=2048)
        image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=1024, intermediate_size=4096,
                                                         num_attention_heads=16, num_hidden_layers=24,
                                                         patch_size=14, image_size=224, projection_dim=768))
        renderer = ShapERenderer()
    fill_mesh_decoder(renderer.mesh_decoder)
    tiny._calibrate_sdf_bias(renderer, (1024, 1024), seed, grid=32)
    return tiny.shap_e_img2img_pipeline(prior, image_encoder, renderer, image_size=224)


def dpt_hybrid(device: str | torch.device = "cpu"):
    """(DPTForDepthEstimation, processor) in the DPT-Hybrid layout (BiT-R50 + ViT-B/16, 384 px)."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    config = DPTConfig(is_hybrid=True, image_size=384, neck_hidden_sizes=[256, 512, 768, 768], fusion_hidden_size=256,
                       reassemble_factors=[1, 1, 1, 0.5], backbone_out_indices=[2, 5, 8, 11], readout_type="project",
                       use_auxiliary_head=False)
    processor = DPTImageProcessor(size={"height": 384, "width": 384}, keep_aspect_ratio=False, do_pad=False)
    with torch.device(device):
        return DPTForDepthEstimation(config).eval(), processor


def depth_anything_small(device: str | torch.device = "cpu"):
    """(DepthAnythingForDepthEstimation, processor) at Depth Anything V2 Small's sizes (DINOv2-S, 518 px)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(image_size=518, patch_size=14, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                            out_indices=[3, 6, 9, 12], reshape_hidden_states=False, apply_layernorm=True)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384,
                                 neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32)
    processor = DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                                  do_pad=False)
    with torch.device(device):
        return DepthAnythingForDepthEstimation(config).eval(), processor
