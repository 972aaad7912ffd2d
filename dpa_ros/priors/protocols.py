"""The interfaces of the pipeline's components: what :class:`dpa_ros.pipeline.Pipeline` calls on each.

Any object with these methods can stand in for a stage's model, passed to
``Pipeline(segmenter=..., ...)`` or ``Pipeline.from_profile(profile, segmenter=...)``; it needs no
profile entry and no base class (the adapters of :mod:`dpa_ros.priors` are one implementation
each). Images are (H, W, 3) uint8 RGB; pixels are (u, v) = (column, row); masks are (H, W) bool
of the input image. A component may also have ``load() -> float`` (load the weights now, return
the seconds it took; :class:`~dpa_ros.priors.base.LazyModel` has it): the pipeline calls it at the
start of the stage and counts the seconds as ``timings_s["load"]``. docs/method.md describes each
stage; docs/components.md shows a custom segmenter.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import trimesh

from dpa_ros.priors.base import Detection

__all__ = ["DepthEstimator", "Enhancer", "Generator", "Scorer", "Segmenter"]


@runtime_checkable
class Segmenter(Protocol):
    """Stage 1: the instances of the prompt's categories in one image."""

    def segment(self, image_rgb: np.ndarray, prompt: str) -> list[Detection]:
        """Detections (label, score in [0, 1], box (x0, y0, x1, y1) pixels, mask) for ``prompt``
        (categories separated by dots, ``"chair. table."``); an empty list when there is none."""


@runtime_checkable
class Enhancer(Protocol):
    """Stage 2: candidate images of each instance's white-canvas crop."""

    def enhance(self, canvases: list[np.ndarray], labels: list[str], seed: int = 0) -> np.ndarray:
        """(n, M, S, S, 3) uint8 candidates for n (S, S, 3) canvases and their labels; M may be 0."""


@runtime_checkable
class Scorer(Protocol):
    """Stage 3: the images of each instance kept for mesh generation."""

    def select(self, originals: list[np.ndarray], candidates: np.ndarray) -> tuple[list[list[np.ndarray]], np.ndarray]:
        """(kept, similarity): ``kept[i]`` the images kept for instance i, best first; ``similarity``
        (n, M + 1) of [original, candidates...] to the original."""


@runtime_checkable
class Generator(Protocol):
    """Stage 4: mesh proposals per instance."""

    def generate(self, images_per_instance: list[list[np.ndarray]], seed: int = 0) -> list[list[trimesh.Trimesh]]:
        """Per instance its meshes (glTF convention, :mod:`dpa_ros.geometry.mesh_frames`: +Y up, front
        toward +Z; any scale); an instance may get none."""


@runtime_checkable
class DepthEstimator(Protocol):
    """Stage 5: depth of the whole image from the image alone.

    Attributes:
        output: ``depth`` or ``disparity`` (relative, affine-ambiguous, aligned to a metric reference
            by the pipeline) or ``metric`` (z-depth in metres).
    """

    output: str

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        """(H, W) float, ≥ 0, in the units of ``output``, at the image's size."""
