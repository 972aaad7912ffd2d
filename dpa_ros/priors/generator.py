"""Stage 4, generate 3D: Shap-E image-to-3D, N latents per kept image, each decoded to a coloured mesh.

Profile section ``generator``: :class:`dpa_ros.priors.config.GeneratorConfig` (a diffusers
Shap-E img2img snapshot; N latents per image, steps, guidance, marching-cubes grid, batch size).
``openai/shap-e-img2img`` holds its prior and image encoder as fp32 ``.bin`` and fp16 safetensors
only, and its renderer as fp32 ``.bin`` only: with ``weights_variant: fp16`` diffusers reads the
``*.fp16.safetensors`` files where a component has them and the plain file where it has none; on
the CPU every weight is then upcast to float32, on CUDA the pipeline runs in float16.

Frames. Shap-E's decoder works in a z-up frame: the object inside [-1, 1]³, seen from the front
by a camera on the -y side looking along +y (front toward -y, like Blender's). The layout stage
takes meshes in the glTF convention (+Y up, front toward +Z; :mod:`dpa_ros.geometry.mesh_frames`),
so :meth:`ShapEGenerator.decode` converts here, once, with :data:`SHAP_E_TO_GLTF` — the ``up = +z``
rotation of that module: (x, y, z) → (x, z, −y). The solver then maps glTF to its internal frame.
"""
from __future__ import annotations

import numpy as np
import torch
import trimesh
from PIL import Image

from dpa_ros.geometry.mesh_frames import rotation_to_gltf
from dpa_ros.priors import random_models, tiny
from dpa_ros.priors.base import LazyModel, seeded_generator
from dpa_ros.priors.config import GeneratorConfig
from dpa_ros.priors.weights import resolve, spec_for

#: rotation taking Shap-E's z-up frame (front toward -y) to the glTF convention (+Y up, front toward +Z)
SHAP_E_TO_GLTF = rotation_to_gltf("+z")


def shap_e_to_gltf(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) vertices in Shap-E's z-up frame → the glTF convention the layout stage takes (same units)."""
    return np.asarray(vertices, dtype=np.float64) @ SHAP_E_TO_GLTF.T


class ShapEGenerator(LazyModel):
    """Mesh proposals from images with diffusers' ``ShapEImg2ImgPipeline`` (prior batched over all images)."""

    name = "generate"
    config_class = GeneratorConfig
    section = "generator"

    def _load(self) -> None:
        if self.source == "tiny":
            self.pipe = tiny.shap_e_img2img(self.cfg.seed, self.cfg.image_size)
        elif self.source == "random":
            self.pipe = random_models.shap_e_img2img(self.cfg.seed, self.device)
        else:
            path = resolve(spec_for(self.cfg, "generator"), self.profile, self.weights_dir)
            from diffusers import ShapEImg2ImgPipeline

            self.pipe = ShapEImg2ImgPipeline.from_pretrained(path, torch_dtype=self.dtype, local_files_only=True,
                                                             variant=self.cfg.weights_variant)
            self.pipe.set_progress_bar_config(disable=True)
        self.pipe.to(self.device)
        if self.pipe.prior.dtype != self.dtype:  # models built from configs are float32
            self.pipe.to(self.device, self.dtype)

    @torch.no_grad()
    def latents(self, images: list[np.ndarray], seed: int = 0) -> torch.Tensor:
        """Shap-E latents (len(images)·N, num_embeddings, embedding_dim), N per image, image-major.

        Latent j of image i uses the generator seeded ``seed + 1000·i + j``.
        """
        self.load()
        n_per = self.cfg.latents_per_image
        per_call = self.cfg.batch_images
        proc = self.pipe.image_processor
        out = []
        for b0 in range(0, len(images), per_call):
            idx = range(b0, min(len(images), b0 + per_call))
            crops = [Image.fromarray(np.asarray(images[i], np.uint8)) for i in idx]
            pixels = proc(crops, return_tensors="pt").pixel_values
            gens = [seeded_generator(seed + 1000 * i + j, self.device) for i in idx for j in range(n_per)]
            res = self.pipe(image=pixels.to(self.device, self.dtype), num_images_per_prompt=n_per,
                            num_inference_steps=self.cfg.steps, guidance_scale=self.cfg.guidance, generator=gens,
                            output_type="latent")
            out.append(res.images)
        return torch.cat(out) if out else torch.zeros(0)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> trimesh.Trimesh | None:
        """One latent → a mesh in the glTF convention with RGBA vertex colours; None when empty.

        Vertices stay in Shap-E's units (the object spans about [-1, 1]); the layout fits the scale.
        """
        renderer = self.pipe.shap_e_renderer
        grid = self.cfg.grid_size
        try:
            raw = renderer.decode_to_mesh(latent[None].to(self.device), self.device, grid_size=grid)
        except (ValueError, ZeroDivisionError):
            # diffusers' decoder fails on a field with no zero crossing (an empty vertex list):
            # torch.cat of no texture batches (ValueError), or a modulo by zero vertices
            return None
        verts = raw.verts.detach().float().cpu().numpy()
        if len(verts) == 0 or len(raw.faces) == 0:
            return None
        rgb = torch.stack([raw.vertex_channels[c] for c in ("R", "G", "B")], dim=1).float().cpu().numpy()
        colors = np.concatenate([np.clip(rgb * 255.0 + 0.5, 0, 255), np.full((len(rgb), 1), 255)], 1).astype(np.uint8)
        return trimesh.Trimesh(vertices=shap_e_to_gltf(verts), faces=raw.faces.cpu().numpy(),
                               vertex_colors=colors, process=False)

    def generate(self, images_per_instance: list[list[np.ndarray]], seed: int = 0) -> list[list[trimesh.Trimesh]]:
        """Mesh proposals per instance: N per kept image, image order kept, empty decodes dropped.

        Args:
            images_per_instance: per instance its K kept (S, S, 3) uint8 images.
            seed: the images of all instances, in order, form one batch; see :meth:`latents`.
        """
        flat, owner = [], []
        for i, imgs in enumerate(images_per_instance):
            flat.extend(imgs)
            owner.extend([i] * len(imgs))
        meshes: list[list[trimesh.Trimesh]] = [[] for _ in images_per_instance]
        if not flat:
            return meshes
        n_per = self.cfg.latents_per_image
        lat = self.latents(flat, seed)
        for k, latent in enumerate(lat):
            mesh = self.decode(latent)
            if mesh is not None:
                meshes[owner[k // n_per]].append(mesh)
        return meshes
