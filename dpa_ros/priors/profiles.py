"""Profiles: YAML files that choose the models, their sizes and every stage setting.

:func:`load_profile` returns a typed, validated :class:`~dpa_ros.priors.config.Profile` (one frozen
dataclass per stage; an unknown or misspelt key is an error naming it and the nearest valid key).

A profile named NAME is ``NAME.yaml`` in the first of: the ``config_path`` given (a file, or a
directory holding profiles), ``$DPA_PROFILES_DIR``, this checkout's ``config/profiles/``, and
``<prefix>/share/dpa_ros/config/profiles/`` for every prefix of ``$AMENT_PREFIX_PATH`` (a colcon
install) and for ``sys.prefix``. ``overrides`` are merged
over the file, nested dicts key by key (``{"enhancer": {"steps": 10}}`` changes one setting).
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import yaml

from dpa_ros.priors.config import Profile, migrate_moved_keys
from dpa_ros.priors.errors import ReconstructionError

PROFILE_NAMES = ("paper", "fast", "smoke")


def profile_dirs(config_path: str | Path | None = None) -> list[Path]:
    """Directories searched for ``NAME.yaml``, in order."""
    dirs: list[Path] = []
    if config_path is not None and Path(config_path).is_dir():
        dirs.append(Path(config_path))
    if os.environ.get("DPA_PROFILES_DIR"):
        dirs.append(Path(os.environ["DPA_PROFILES_DIR"]))
    dirs.append(Path(__file__).resolve().parents[2] / "config" / "profiles")
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    dirs.extend(Path(p) / "share" / "dpa_ros" / "config" / "profiles" for p in prefixes)
    return dirs


def merge(base: dict, over: dict | None) -> dict:
    """``base`` with ``over`` merged in recursively (a new dict; inputs untouched)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReconstructionError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReconstructionError(f"{what} {path} is not a YAML mapping")
    return data


def _named(name: str, config_path: str | Path | None, seen: tuple[str, ...]) -> dict:
    """Profile file ``NAME.yaml`` from :func:`profile_dirs`, its ``base`` chain merged under it."""
    if name in seen:
        raise ReconstructionError(f"profile '{name}' extends itself (base chain {' -> '.join(seen + (name,))})")
    for folder in profile_dirs(config_path):
        path = folder / f"{name}.yaml"
        if path.is_file():
            data = migrate_moved_keys(_read_yaml(path, "profile"), str(path))
            if "base" in data:
                data = merge(_named(str(data.pop("base")), config_path, seen + (name,)), data)
            return data
    searched = ", ".join(str(d) for d in profile_dirs(config_path))
    raise ReconstructionError(f"unknown profile '{name}' (searched {searched}; known: {', '.join(PROFILE_NAMES)})")


def load_profile(name: str, config_path: str | Path | None = None, overrides: dict | None = None) -> Profile:
    """The profile ``name``, the config file and ``overrides`` applied, typed and validated.

    ``config_path`` may be a directory holding ``NAME.yaml`` files, or a YAML file that refines
    the profile: its keys are merged over profile ``name`` (or over the profile its ``base`` key
    names), e.g. a file with only a ``layout:`` section changes only the layout. A file with a
    ``profiles: {NAME: {...}}`` section contributes that entry instead. Profile files may also say
    ``base: OTHER`` to extend another profile. Raises :class:`~dpa_ros.priors.config.ProfileError`
    (a :class:`ReconstructionError`) for an unknown key or a bad value.
    """
    return Profile.from_dict(load_profile_dict(name, config_path, overrides))


def load_profile_dict(name: str, config_path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """The merged, not yet validated mapping :func:`load_profile` types (``name`` set)."""
    refine: dict = {}
    if config_path is not None and Path(config_path).is_file():
        refine = _read_yaml(Path(config_path), "config")
        if isinstance(refine.get("profiles"), dict):
            refine = refine["profiles"].get(name) or {}
        refine = migrate_moved_keys(refine, str(config_path))
    base = str(refine.pop("base", name))
    data = merge(_named(base, config_path, ()), refine)
    data = merge(data, migrate_moved_keys(overrides, "overrides") if overrides else overrides)
    data["name"] = refine.get("name", name)
    return data
