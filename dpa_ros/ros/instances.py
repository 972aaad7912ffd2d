"""Known objects from a ``Reconstruct`` goal (``dpa_ros/msg/Instance``) → the layout's instances.

The node's version of ``dpa-reconstruct --instances``: each goal entry carries a label, a mono8
mask the image's size and ``file://`` mesh URIs. Any ROS client can send a goal, so a mesh is
read only when its real path (symlinks resolved, ``..`` collapsed) lies under one of the
``mesh_roots`` directories; with no roots the node refuses instances altogether. Every refusal is
an :class:`InstancesError` naming the entry and what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import trimesh

from dpa_ros.assemble import Instance
from dpa_ros.core.scene import SceneFormatError, read_mesh
from dpa_ros.geometry.mesh_frames import check_up
from dpa_ros.ros.conversions import ConversionError, image_to_numpy
from dpa_ros.ros.inputs import processed_size


class InstancesError(ValueError):
    """A goal's ``instances`` that cannot be used (the message says which entry and why)."""


def checked_roots(mesh_roots: list[str]) -> list[Path]:
    """The ``mesh_roots`` parameter as resolved absolute directories; ValueError for one that is
    not an existing directory or not absolute."""
    roots = []
    for root in mesh_roots:
        if not root:
            continue
        path = Path(root)
        if not path.is_absolute() or not path.is_dir():
            raise ValueError(f"mesh_roots: {root!r} is not an absolute path to an existing directory")
        roots.append(path.resolve())
    return roots


def mesh_path(uri: str, roots: list[Path]) -> Path:
    """The local file of a ``file://`` URI when it lies under one of ``roots`` (after resolving
    symlinks and ``..``); InstancesError otherwise, naming the roots it failed."""
    parsed = urlparse(uri)
    names = ", ".join(str(r) for r in roots)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise InstancesError(f"mesh URI {uri!r}: only file:// URIs under mesh_roots ({names}) are read")
    raw = unquote(parsed.path)
    if not os.path.isabs(raw):
        raise InstancesError(f"mesh URI {uri!r}: not an absolute file path")
    real = Path(os.path.realpath(raw))
    if not any(real == r or r in real.parents for r in roots):
        raise InstancesError(f"mesh URI {uri!r} resolves to {real}, outside the mesh_roots ({names})")
    if not real.is_file():
        raise InstancesError(f"mesh URI {uri!r}: no such file {real}")
    return real


def _load_mesh(path: Path, where: str) -> trimesh.Trimesh:
    try:
        return read_mesh(path)
    except SceneFormatError as exc:
        raise InstancesError(f"{where}: {exc}") from exc


def instances_from_goal(entries, width: int, height: int, mesh_roots: list[Path],
                        max_image_size: int = 0) -> list[Instance]:
    """Goal ``Instance`` messages → :class:`dpa_ros.assemble.Instance` (score 1) for an image of
    ``width`` × ``height`` pixels; ``mesh_roots`` from :func:`checked_roots`. A mask the size of
    the received image that ``max_image_size`` (px, the node's parameter) downscaled to
    ``width`` × ``height`` is downscaled with it (nearest pixel).

    Raises InstancesError: no mesh_roots, an empty label or mesh list, a mask that is not mono8 or
    not the image's size or empty, a URI outside the roots or of another scheme, a missing or
    unreadable mesh, an unknown ``up`` axis.
    """
    if not mesh_roots:
        raise InstancesError("this node reads no meshes: set the mesh_roots parameter to send instances")
    out = []
    for i, entry in enumerate(entries):
        where = f"instance {i}"
        if not entry.label.strip():
            raise InstancesError(f"{where}: empty label")
        where = f"instance {i} ({entry.label!r})"
        if not entry.mesh_uris:
            raise InstancesError(f"{where}: no mesh_uris")
        if entry.mask.encoding not in ("mono8", "8UC1"):
            raise InstancesError(f"{where}: mask encoding {entry.mask.encoding!r}, expected mono8")
        size = (entry.mask.width, entry.mask.height)
        if size != (width, height) and processed_size(*size, max_image_size) != (width, height):
            raise InstancesError(f"{where}: mask is {entry.mask.width}x{entry.mask.height}, "
                                 f"the image is {width}x{height}")
        try:
            mask = image_to_numpy(entry.mask) > 0
        except ConversionError as exc:
            raise InstancesError(f"{where}: mask: {exc}") from exc
        if size != (width, height):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        if not mask.any():
            raise InstancesError(f"{where}: empty mask")
        try:
            up = check_up(entry.up or "+y")
        except ValueError as exc:
            raise InstancesError(f"{where}: up: {exc}") from exc
        meshes = []
        for uri in entry.mesh_uris:
            try:
                path = mesh_path(uri, mesh_roots)
            except InstancesError as exc:
                raise InstancesError(f"{where}: {exc}") from exc
            meshes.append(_load_mesh(path, where))
        out.append(Instance(label=entry.label.strip(), score=1.0, mask=np.asarray(mask, bool), meshes=meshes, up=up))
    return out
