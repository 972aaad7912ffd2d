"""Stage 3, filter: OpenCLIP image embeddings; keep the K candidates most similar to the original crop.

Profile section ``scorer``: :class:`dpa_ros.priors.config.ScorerConfig` (open_clip ``arch``, the
checkpoint file of a hub repository, K, whether the original crop competes).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from dpa_ros.priors import random_models, tiny
from dpa_ros.priors.base import LazyModel
from dpa_ros.priors.config import ScorerConfig
from dpa_ros.priors.weights import resolve, spec_for


class ClipScorer(LazyModel):
    """Cosine similarity of OpenCLIP image embeddings, batched over every image of every instance."""

    name = "score"
    config_class = ScorerConfig
    section = "scorer"

    def _load(self) -> None:
        if self.source == "tiny":
            self.model, self.preprocess = tiny.open_clip_model(self.cfg.seed, self.cfg.image_size)
        elif self.source == "random":
            self.model, self.preprocess = random_models.open_clip_model(self.cfg.arch, self.device)
        else:
            path = resolve(spec_for(self.cfg, "scorer"), self.profile, self.weights_dir)
            import open_clip

            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                self.cfg.arch, pretrained=str(path))
            self.model.eval()
        self.model.to(self.device, self.dtype)

    @torch.no_grad()
    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings (n, D) float32 of (h, w, 3) uint8 images."""
        self.load()
        if not images:
            return np.zeros((0, 0), dtype=np.float32)
        batch = torch.stack([self.preprocess(Image.fromarray(np.asarray(im, np.uint8))) for im in images])
        feats = self.model.encode_image(batch.to(self.device, self.dtype)).float()
        feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return feats.cpu().numpy().astype(np.float32)

    def select(self, originals: list[np.ndarray], candidates: np.ndarray) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """The top-K images per instance.

        Args:
            originals: per instance its (S, S, 3) uint8 canvas crop.
            candidates: (n, M, S, S, 3) uint8 enhancer outputs (M may be 0).

        Returns:
            The pair ``(kept, similarity)``: ``kept[i]`` is a list of up to K images of instance i, best first;
            ``similarity`` is (n, M + 1) float32 cosine similarity in [-1, 1] of [original,
            candidates...] to the original (column 0 is 1).
        """
        n = len(originals)
        m = candidates.shape[1] if candidates.ndim == 5 else 0
        k = self.cfg.top_k
        keep_original = self.cfg.keep_original
        images = [im for i in range(n) for im in [originals[i], *candidates[i]]]
        if not images:
            return [], np.zeros((0, m + 1), dtype=np.float32)
        feats = self.embed(images).reshape(n, m + 1, -1)
        sims = np.einsum("nd,nmd->nm", feats[:, 0], feats).astype(np.float32)
        kept = []
        for i in range(n):
            order = np.argsort(-sims[i], kind="stable")
            if not keep_original:
                order = order[order != 0]
            pool = [originals[i], *candidates[i]]
            chosen = [pool[j] for j in order[:k]] or [originals[i]]
            kept.append(chosen)
        return kept, sims
