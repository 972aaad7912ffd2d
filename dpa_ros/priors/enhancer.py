"""Stage 2, enhance / complete: Stable Diffusion image-to-image (SDEdit) on each instance's canvas.

Profile section ``enhancer``: :class:`dpa_ros.priors.config.EnhancerConfig` (a diffusers
Stable Diffusion 2.x snapshot; canvas, M candidates, SDEdit strength, steps, guidance, scheduler,
prompt template, batch size). With ``weights_variant: fp16`` the ``*.fp16.*`` files are read (on the
CPU they are upcast to float32 after loading).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from dpa_ros.priors import random_models, tiny
from dpa_ros.priors.base import LazyModel, seeded_generator
from dpa_ros.priors.config import EnhancerConfig
from dpa_ros.priors.weights import resolve, spec_for


class StableDiffusionEnhancer(LazyModel):
    """M SDEdit candidates per instance canvas, all instances batched together."""

    name = "enhance"
    config_class = EnhancerConfig
    section = "enhancer"

    def _load(self) -> None:
        if self.source == "tiny":
            self.pipe = tiny.stable_diffusion_img2img(self.cfg.seed)
        elif self.source == "random":
            self.pipe = random_models.stable_diffusion_img2img(self.device)
        else:
            path = resolve(spec_for(self.cfg, "enhancer"), self.profile, self.weights_dir)
            from diffusers import StableDiffusionImg2ImgPipeline

            self.pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
                path, torch_dtype=self.dtype, local_files_only=True, safety_checker=None,
                requires_safety_checker=False, variant=self.cfg.weights_variant)
            self.pipe.set_progress_bar_config(disable=True)
        if self.cfg.scheduler == "ddim":
            from diffusers import DDIMScheduler

            self.pipe.scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)
        self.pipe.to(self.device)
        if self.pipe.unet.dtype != self.dtype:  # models built from configs are float32
            self.pipe.to(self.device, self.dtype)

    @property
    def canvas_size(self) -> int:
        return self.cfg.canvas_size

    @torch.no_grad()
    def enhance(self, canvases: list[np.ndarray], labels: list[str], seed: int = 0) -> np.ndarray:
        """Candidates for each instance canvas.

        Args:
            canvases: per instance a (S, S, 3) uint8 white-canvas crop (S = ``canvas_size``).
            labels: per instance its category (fills the prompt template).
            seed: candidate j of instance i uses the generator seeded ``seed + 1000·i + j``, so a
                result does not depend on how instances are batched.

        Returns:
            (n, M, S, S, 3) uint8 images; M = ``candidates`` (either may be 0: then nothing is loaded or run).
        """
        m = self.cfg.candidates
        n, s = len(canvases), self.canvas_size
        if n == 0 or m == 0:
            return np.zeros((n, m, s, s, 3), dtype=np.uint8)
        self.load()
        template = self.cfg.prompt_template
        per_call = max(1, self.cfg.batch_images // m)
        out = np.zeros((n, m, s, s, 3), dtype=np.uint8)
        for b0 in range(0, n, per_call):
            idx = list(range(b0, min(n, b0 + per_call)))
            # one entry per candidate, image-major: diffusers tiles a batch of init images
            # (i0 i1 i0 i1 ...) but repeats prompts (p0 p0 p1 p1 ...) with num_images_per_prompt > 1
            images = [Image.fromarray(canvases[i]).resize((s, s), Image.BICUBIC) for i in idx for _ in range(m)]
            prompts = [template.format(category=labels[i]) for i in idx for _ in range(m)]
            gens = [seeded_generator(seed + 1000 * i + j, self.device) for i in idx for j in range(m)]
            res = self.pipe(prompt=prompts, image=images, strength=self.cfg.strength,
                            num_inference_steps=self.cfg.steps, guidance_scale=self.cfg.guidance,
                            num_images_per_prompt=1, generator=gens, output_type="np")
            imgs = np.clip(np.nan_to_num(res.images) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out[idx] = imgs.reshape(len(idx), m, s, s, 3)
        return out
