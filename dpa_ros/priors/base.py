"""Small shared pieces of the prior adapters: errors, the detection record, devices, lazy loading.

Every adapter is a :class:`LazyModel`: constructing it is cheap, :meth:`LazyModel.load` builds or
reads its weights once (from ``weights_dir`` or the local Hugging Face cache, never the network)
and keeps them resident, and every inference method calls it implicitly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dpa_ros.priors.errors import Cancelled, MissingWeightsError, ReconstructionError

__all__ = ["Cancelled", "Detection", "LazyModel", "MissingWeightsError", "ReconstructionError", "seeded_generator",
           "select_device", "select_dtype"]


@dataclass
class Detection:
    """One detected, segmented instance in image pixels.

    Attributes:
        label: category (one of the prompt's categories).
        score: detector confidence in [0, 1].
        box: (4,) float64 box (x0, y0, x1, y1) in pixels, x = column, y = row.
        mask: (H, W) bool instance mask of the input image.
    """

    label: str
    score: float
    box: np.ndarray
    mask: np.ndarray


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else CUDA when available, else CPU. ``"auto"`` means None.

    Raises :class:`ReconstructionError` for an unknown device or CUDA requested where there is none.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ReconstructionError(f"unknown device '{device}' (use cpu, cuda, cuda:N or auto)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ReconstructionError(f"device '{device}' requested but CUDA is not available here (use cpu or auto)")
    return dev


def select_dtype(device: torch.device, fp16: bool = True) -> torch.dtype:
    """float16 on CUDA when the model supports it (``fp16``), float32 otherwise (always on CPU)."""
    return torch.float16 if (fp16 and device.type == "cuda") else torch.float32


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded with ``seed`` for ``device`` (CPU generators for CPU tensors)."""
    dev = torch.device(device)
    return torch.Generator(device=dev.type if dev.type == "cuda" else "cpu").manual_seed(int(seed))


class LazyModel:
    """Base of the adapters: configuration now, weights on first use, resident afterwards.

    Args:
        cfg: this model's section of the profile: an instance of the adapter's ``config_class``
            (:mod:`dpa_ros.priors.config`), or a mapping validated into one.
        profile: profile name, for error messages (``dpa-weights download --profile NAME``).
        weights_dir: directory searched before the Hugging Face cache (see :mod:`dpa_ros.priors.weights`).
        device: torch device; None picks CUDA when available.
    """

    #: the name used in timings and messages
    name = "model"
    #: the typed config of this adapter's profile section (set by each adapter)
    config_class: type = object
    #: the section's dotted name in a profile, for messages
    section = "model"

    def __init__(self, cfg, profile: str = "smoke", weights_dir: str | Path | None = None,
                 device: str | torch.device | None = None) -> None:
        self.cfg = cfg if isinstance(cfg, self.config_class) else self.config_class.from_dict(cfg, self.section)
        self.profile = profile
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self.device = select_device(device)
        self.dtype = select_dtype(self.device, bool(getattr(self.cfg, "fp16", True)))
        self.source = getattr(self.cfg, "source", "weights")
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> float:
        """Load the model now if it is not resident; returns the seconds it took (0.0 when already loaded)."""
        if self._loaded:
            return 0.0
        t0 = time.perf_counter()
        self._load()
        self._loaded = True
        return time.perf_counter() - t0

    def _load(self) -> None:
        raise NotImplementedError
