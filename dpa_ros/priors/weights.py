"""Where model weights live, whether they are here and whole, and fetching them on request.

A weight is named by a Hugging Face repository id (and a ``revision``) and, for single-file
checkpoints (SAM, OpenCLIP), a file inside it. It is found, in order, at

1. ``<weights_dir>/<org>--<name>/[<filename>]`` or ``<weights_dir>/<org>/<name>/[<filename>]``
   (``weights_dir`` from the caller, else ``$DPA_WEIGHTS_DIR``);
2. the local Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), looked up with ``local_files_only=True``.

A snapshot counts as found only when every file the loader reads is there
(:mod:`dpa_ros.priors.hub_files` lists them per repository; for other repositories, at least one
weight file). :func:`weight_status` goes further for ``dpa-weights check``: it opens every weight file's
header (safetensors header length and tensor offsets, the zip directory of torch files, JSON) so a
truncated download is reported as such.

Nothing here touches the network except :func:`download`, which only ``dpa-weights download``
calls. A weight that is not found raises :class:`~dpa_ros.priors.base.MissingWeightsError` at once.
"""
from __future__ import annotations

import fnmatch
import json
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dpa_ros.priors.config import ModelRef, Profile
from dpa_ros.priors.errors import MissingWeightsError
from dpa_ros.priors.hub_files import repo_files

#: suffixes of files that hold weights (a snapshot needs at least one)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")


@dataclass(frozen=True)
class WeightSpec:
    """One weight a profile needs.

    Attributes:
        section: where in the profile it is named (``segmenter.sam`` ...).
        repo_id: Hugging Face repository id.
        filename: a single file inside the repository, or None for the whole snapshot.
        allow_patterns: file globs that :func:`download` fetches (None: everything).
        revision: commit, tag or branch; None is the repository's default branch.
    """

    section: str
    repo_id: str
    filename: str | None = None
    allow_patterns: tuple[str, ...] | None = None
    revision: str | None = None

    @property
    def local_name(self) -> str:
        return self.repo_id.replace("/", "--")

    def describe(self) -> str:
        at = f"@{self.revision[:12]}" if self.revision else ""
        return f"{self.section} ({self.repo_id}{at}{'/' + self.filename if self.filename else ''})"

    def expected_files(self) -> dict[str, int] | None:
        """{path in the snapshot: download bytes} of the files the loader reads (all of them, whatever
        ``allow_patterns`` says: a pattern that misses one leaves the snapshot incomplete); None when
        the repository is not in :data:`~dpa_ros.priors.hub_files.HUB_FILES`."""
        known = repo_files(self.repo_id)
        if known is None:
            return None
        if self.filename:
            return {self.filename: known.get(self.filename, 0)}
        return known

    def download_bytes(self) -> int | None:
        """The bytes of the files this weight needs (what :func:`download` fetches; None when unknown)."""
        files = self.expected_files()
        return sum(files.values()) if files is not None else None


def matches(path: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """True when ``path`` matches one of the globs (huggingface_hub's ``allow_patterns`` rule: fnmatch)."""
    return any(fnmatch.fnmatch(path, p) for p in patterns)


def spec_for(cfg: ModelRef, section: str) -> WeightSpec:
    """The :class:`WeightSpec` of one model section of a profile."""
    return WeightSpec(section, str(cfg.model_id), cfg.filename, cfg.allow_patterns, cfg.revision)


def weight_specs(profile: Profile) -> list[WeightSpec]:
    """The weights a profile needs (none for sections built from configs, ``source: tiny`` / ``random``)."""
    return [spec_for(cfg, section) for section, cfg in profile.model_sections().items()
            if cfg.source == "weights" and cfg.model_id]


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


def missing_files(spec: WeightSpec, snapshot: Path) -> list[str]:
    """Files the loader reads that are absent from a snapshot directory (existence only, no reading)."""
    expected = spec.expected_files()
    if expected is not None:
        return [f for f in expected if not (snapshot / f).is_file()]
    has_weights = any(p.suffix in WEIGHT_SUFFIXES for p in snapshot.rglob("*") if p.is_file())
    return [] if has_weights else [f"a weight file ({', '.join('*' + s for s in WEIGHT_SUFFIXES)})"]


def _complete(spec: WeightSpec, path: Path) -> bool:
    if spec.filename:
        return path.is_file()
    return path.is_dir() and not missing_files(spec, path)


def _lookup(spec: WeightSpec, weights_dir: str | Path | None) -> Path | None:
    """The first location of the weight (complete or not), or None; never uses the network."""
    wdir = default_weights_dir(weights_dir)
    if wdir is not None:
        for cand in _local_candidates(spec, wdir):
            if (spec.filename and cand.is_file()) or (not spec.filename and cand.is_dir() and any(cand.iterdir())):
                return cand
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:  # huggingface_hub comes with transformers; without it only weights_dir works
        return None
    try:
        if spec.filename:
            return Path(hf_hub_download(spec.repo_id, spec.filename, revision=spec.revision,
                                        cache_dir=hf_cache_dir(), local_files_only=True))
        return Path(snapshot_download(spec.repo_id, revision=spec.revision, cache_dir=hf_cache_dir(),
                                      local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, or an incomplete cache entry
        return None


def find(spec: WeightSpec, weights_dir: str | Path | None = None) -> Path | None:
    """The local path of a complete weight (file, or snapshot directory with every file the loader
    reads), or None; never uses the network."""
    path = _lookup(spec, weights_dir)
    return path if path is not None and _complete(spec, path) else None


def expected_path(spec: WeightSpec, weights_dir: str | Path | None = None) -> Path:
    """Where :func:`find` looks first: the weights_dir location, else the HF cache entry."""
    wdir = default_weights_dir(weights_dir)
    if wdir is not None:
        return _local_candidates(spec, wdir)[0]
    return hf_cache_dir() / f"models--{spec.local_name}"


def resolve(spec: WeightSpec, profile: str, weights_dir: str | Path | None = None) -> Path:
    """:func:`find`, or raise :class:`MissingWeightsError` naming the model, the path, what is missing
    and the command."""
    path = find(spec, weights_dir)
    if path is not None:
        return path
    partial = _lookup(spec, weights_dir)
    if partial is not None and not spec.filename:
        lacking = missing_files(spec, partial)
        raise MissingWeightsError(spec.describe(), partial, profile,
                                  f"incomplete snapshot, missing {', '.join(lacking[:4])}"
                                  f"{' ...' if len(lacking) > 4 else ''}")
    where = expected_path(spec, weights_dir)
    detail = "or the Hugging Face cache" if default_weights_dir(weights_dir) else "no weights_dir given"
    raise MissingWeightsError(spec.describe(), where, profile, detail)


def file_problem(path: Path) -> str | None:
    """Why a downloaded file is unusable (``missing``, ``truncated ...``, ``unreadable ...``), or None.

    Reads headers only: a safetensors file must be as long as its header says (8-byte length, JSON
    header, the largest tensor end offset); a torch ``.bin``/``.pth``/``.pt``/``.ckpt`` must be a zip
    archive whose directory (at the end of the file) reads; a ``.json`` file must parse.
    """
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size == 0:
        return "empty (0 bytes)"
    suffix = path.suffix
    try:
        if suffix == ".safetensors":
            with path.open("rb") as fh:
                head = fh.read(8)
                if len(head) < 8:
                    return f"truncated ({size} bytes, no safetensors header)"
                (n,) = struct.unpack("<Q", head)
                if 8 + n > size:
                    return f"truncated ({size} bytes, header alone needs {8 + n})"
                header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
            if size < 8 + n + end:
                return f"truncated ({size} of {8 + n + end} bytes)"
        elif suffix in (".bin", ".pth", ".pt", ".ckpt"):
            if not zipfile.is_zipfile(path):
                return f"truncated or not a torch zip checkpoint ({size} bytes, no zip directory at its end)"
            with zipfile.ZipFile(path) as zf:
                last = max((i.header_offset + i.compress_size for i in zf.infolist()), default=0)
            if size < last:
                return f"truncated ({size} of at least {last} bytes)"
        elif suffix == ".json":
            json.loads(path.read_text())
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})".splitlines()[0]
    return None


@dataclass(frozen=True)
class WeightStatus:
    """What :func:`weight_status` found for one weight.

    Attributes:
        spec: the weight.
        path: where it was found (possibly incomplete), or None.
        problems: ``[(file, reason)]`` for every missing or damaged file; empty when usable.
    """

    spec: WeightSpec
    path: Path | None
    problems: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return self.path is not None and not self.problems


def weight_status(spec: WeightSpec, weights_dir: str | Path | None = None) -> WeightStatus:
    """Locate one weight and check every file it needs (offline, header reads only)."""
    path = _lookup(spec, weights_dir)
    if path is None:
        return WeightStatus(spec, None, (("*", "not downloaded"),))
    if spec.filename:
        problem = file_problem(path)
        return WeightStatus(spec, path, ((spec.filename, problem),) if problem else ())
    problems = [(f, "missing") for f in missing_files(spec, path)]
    expected = spec.expected_files()
    names = list(expected) if expected is not None else [
        str(p.relative_to(path)) for p in sorted(path.rglob("*")) if p.is_file()
        and (spec.allow_patterns is None or matches(str(p.relative_to(path)), spec.allow_patterns))]
    for name in names:
        if (path / name).is_file():
            problem = file_problem(path / name)
            if problem:
                problems.append((name, problem))
    return WeightStatus(spec, path, tuple(problems))


def check(profile: Profile, weights_dir: str | Path | None = None) -> list[WeightStatus]:
    """Every weight of ``profile`` with where it is and what is missing or damaged (offline)."""
    return [weight_status(spec, weights_dir) for spec in weight_specs(profile)]


def download(profile: Profile, weights_dir: str | Path | None = None, timeout_s: float = 30.0,
             log=print) -> list[Path]:
    """Fetch the profile's missing or damaged weights from the Hugging Face hub (the only networked call here).

    With a ``weights_dir`` the files go to ``<weights_dir>/<org>--<name>/``, else into the HF cache.
    Only the files ``allow_patterns`` selects are fetched, at the section's ``revision``.
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
    for status in check(profile, weights_dir):
        spec = status.spec
        if status.ok:
            log(f"present  {spec.describe()}: {status.path}")
            paths.append(status.path)
            continue
        size = spec.download_bytes()
        log(f"fetching {spec.describe()}{f' ({format_bytes(size)})' if size else ''} "
            f"(huggingface_hub {huggingface_hub.__version__})")
        local_dir = (wdir / spec.local_name) if wdir is not None else None
        cache_dir = None if local_dir else hf_cache_dir()
        if spec.filename:
            path = hf_hub_download(spec.repo_id, spec.filename, revision=spec.revision, local_dir=local_dir,
                                   cache_dir=cache_dir, force_download=status.path is not None)
        else:
            path = snapshot_download(spec.repo_id, revision=spec.revision, local_dir=local_dir,
                                     allow_patterns=list(spec.allow_patterns) if spec.allow_patterns else None,
                                     cache_dir=cache_dir, force_download=bool(status.problems and status.path))
        paths.append(Path(path))
        log(f"done     {spec.describe()}: {path}")
    return paths


def format_bytes(n: int | None) -> str:
    """``1.73 GB``-style size (decimal units, as the model pages print them); ``?`` when unknown."""
    if n is None:
        return "?"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"
