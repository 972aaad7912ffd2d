"""Where model weights live, whether they are here, and fetching them on request.

A weight is named by a Hugging Face repository id and, for single-file checkpoints (SAM,
OpenCLIP), a file inside it. It is found, in order, at

1. ``<weights_dir>/<org>--<name>/[<filename>]`` or ``<weights_dir>/<org>/<name>/[<filename>]``
   (``weights_dir`` from the caller, else ``$DPA_WEIGHTS_DIR``);
2. the local Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), looked up with ``local_files_only=True``.

Nothing here touches the network except :func:`download`, which only ``dpa-weights download``
calls. A weight that is not found raises :class:`~dpa_ros.priors.base.MissingWeightsError` at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dpa_ros.priors.base import MissingWeightsError

#: profile sections (dotted paths) that may name a weight
WEIGHT_SECTIONS = ("segmenter.detector", "segmenter.sam", "enhancer", "scorer", "generator", "depth",
                   "depth.metric_model")


@dataclass(frozen=True)
class WeightSpec:
    """One weight a profile needs.

    Attributes:
        section: where in the profile it is named (``segmenter.sam`` ...).
        repo_id: Hugging Face repository id.
        filename: a single file inside the repository, or None for the whole snapshot.
        allow_patterns: file globs that :func:`download` fetches (None: everything).
    """

    section: str
    repo_id: str
    filename: str | None = None
    allow_patterns: tuple[str, ...] | None = None

    @property
    def local_name(self) -> str:
        return self.repo_id.replace("/", "--")

    def describe(self) -> str:
        return f"{self.section} ({self.repo_id}{'/' + self.filename if self.filename else ''})"


def _section(profile: dict, dotted: str) -> dict | None:
    node: object = profile
    for key in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, dict) else None


def weight_specs(profile: dict) -> list[WeightSpec]:
    """The weights a profile needs (none for sections built from configs, ``source: tiny``)."""
    specs = []
    for dotted in WEIGHT_SECTIONS:
        sec = _section(profile, dotted)
        if not sec or sec.get("source", "weights") != "weights" or not sec.get("model_id"):
            continue
        patterns = sec.get("allow_patterns")
        specs.append(WeightSpec(dotted, str(sec["model_id"]), sec.get("filename"),
                                tuple(patterns) if patterns else None))
    return specs


def default_weights_dir(weights_dir: str | Path | None = None) -> Path | None:
    """``weights_dir``, else ``$DPA_WEIGHTS_DIR``, else None (Hugging Face cache only)."""
    if weights_dir:
        return Path(weights_dir).expanduser()
    env = os.environ.get("DPA_WEIGHTS_DIR")
    return Path(env).expanduser() if env else None


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment names it now (read at call time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def _local_candidates(spec: WeightSpec, weights_dir: Path) -> list[Path]:
    roots = [weights_dir / spec.local_name, weights_dir / spec.repo_id]
    return [r / spec.filename for r in roots] if spec.filename else roots


def find(spec: WeightSpec, weights_dir: str | Path | None = None) -> Path | None:
    """The local path of a weight (file or snapshot directory), or None; never uses the network."""
    wdir = default_weights_dir(weights_dir)
    if wdir is not None:
        for cand in _local_candidates(spec, wdir):
            if spec.filename and cand.is_file():
                return cand
            if not spec.filename and cand.is_dir() and any(cand.iterdir()):
                return cand
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:  # huggingface_hub comes with transformers; without it only weights_dir works
        return None
    try:
        if spec.filename:
            return Path(hf_hub_download(spec.repo_id, spec.filename, cache_dir=hf_cache_dir(), local_files_only=True))
        return Path(snapshot_download(spec.repo_id, cache_dir=hf_cache_dir(), local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, or an incomplete cache entry
        return None


def expected_path(spec: WeightSpec, weights_dir: str | Path | None = None) -> Path:
    """Where :func:`find` looks first: the weights_dir location, else the HF cache entry."""
    wdir = default_weights_dir(weights_dir)
    if wdir is not None:
        return _local_candidates(spec, wdir)[0]
    return hf_cache_dir() / f"models--{spec.local_name}"


def resolve(spec: WeightSpec, profile: str, weights_dir: str | Path | None = None) -> Path:
    """:func:`find`, or raise :class:`MissingWeightsError` naming the model, the path and the command."""
    path = find(spec, weights_dir)
    if path is None:
        where = expected_path(spec, weights_dir)
        detail = "or the Hugging Face cache" if default_weights_dir(weights_dir) else "no weights_dir given"
        raise MissingWeightsError(spec.describe(), where, profile, detail)
    return path


def spec_for(cfg: dict, section: str) -> WeightSpec:
    """The :class:`WeightSpec` of one model section of a profile."""
    patterns = cfg.get("allow_patterns")
    return WeightSpec(section, str(cfg["model_id"]), cfg.get("filename"), tuple(patterns) if patterns else None)


def check(profile: dict, weights_dir: str | Path | None = None) -> list[tuple[WeightSpec, Path | None]]:
    """Every weight of ``profile`` with its local path, or None where it is missing (offline)."""
    return [(spec, find(spec, weights_dir)) for spec in weight_specs(profile)]


def download(profile: dict, weights_dir: str | Path | None = None, timeout_s: float = 30.0,
             log=print) -> list[Path]:
    """Fetch the profile's missing weights from the Hugging Face hub (the only networked call here).

    With a ``weights_dir`` the files go to ``<weights_dir>/<org>--<name>/``, else into the HF cache.
    ``timeout_s`` bounds each connection attempt, so an unreachable hub fails instead of hanging.
    """
    seconds = max(1, int(round(timeout_s)))
    os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = str(seconds)  # read when huggingface_hub is first imported
    os.environ["HF_HUB_ETAG_TIMEOUT"] = str(seconds)
    import huggingface_hub
    from huggingface_hub import constants, hf_hub_download, snapshot_download

    constants.HF_HUB_DOWNLOAD_TIMEOUT = seconds  # ... and here when it already was
    constants.HF_HUB_ETAG_TIMEOUT = seconds
    if constants.HF_HUB_OFFLINE:
        raise RuntimeError("HF_HUB_OFFLINE is set; unset it to download")
    wdir = default_weights_dir(weights_dir)
    paths = []
    for spec, found in check(profile, weights_dir):
        if found is not None:
            log(f"present  {spec.describe()}: {found}")
            paths.append(found)
            continue
        log(f"fetching {spec.describe()} (huggingface_hub {huggingface_hub.__version__})")
        local_dir = (wdir / spec.local_name) if wdir is not None else None
        if spec.filename:
            path = hf_hub_download(spec.repo_id, spec.filename, local_dir=local_dir,
                                   cache_dir=None if local_dir else hf_cache_dir())
        else:
            path = snapshot_download(spec.repo_id, local_dir=local_dir, allow_patterns=list(spec.allow_patterns or []) or None,
                                     cache_dir=None if local_dir else hf_cache_dir())
        paths.append(Path(path))
        log(f"done     {spec.describe()}: {path}")
    return paths
