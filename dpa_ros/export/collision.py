"""Collision geometry shared by every simulator export (Gazebo SDF, USD, MJCF), its mass
properties, and the static slabs that stand in for support planes.

Each object gets a list of **convex parts** in its link frame (object axes, scale applied, metres):

* ``ExportOptions.collision == "auto"`` (the default): one convex hull when the object is convex
  (its closed mesh fills at least ``CONVEX_FILL`` of its hull's volume: a box, a can), else an
  approximate convex decomposition (a table, a chair, a shelf, a mug, a bowl);
* ``"convex_hull"``: always one hull; ``"decomposition"``: always decomposed.

The decomposition is V-HACD (``ExportOptions.decomposer == "vhacd"``, the default, PyPI ``vhacdx``
through trimesh) or CoACD (``"coacd"``, PyPI ``coacd``), both deterministic (CoACD seeded), at most
``ExportOptions.max_convex_hulls`` parts. ``bench/collision.py`` compares the two (time, parts,
MuJoCo stability of concave objects resting on the floor).

Mass and inertia come from the same parts (:func:`parts_mass_properties`): density × the summed
part volumes, inertia about the combined centre of mass. Every writer uses these numbers, so
Gazebo, Isaac (USD) and MuJoCo simulate the same solid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from dpa_ros.core.scene import Scene
from dpa_ros.export.frames import WorldFrame
from dpa_ros.export.meshes import ExportObject, MassProperties, mass_properties
from dpa_ros.export.options import ExportError, ExportOptions

CONVEX_FILL = 0.95        # mesh volume / hull volume at or above which "auto" keeps one hull
SLAB_THICKNESS_M = 0.025  # support planes become slabs this thick, extruded downward (world -z)
DECOMPOSITION_SEED = 0
# CoACD knobs: a coarse Monte-Carlo tree search keeps it well under a second per object.
COACD_THRESHOLD = 0.05        # concavity tolerance (relative to the mesh's size)
COACD_RESOLUTION = 500        # surface samples per part for the concavity measure
COACD_MCTS = {"mcts_iterations": 60, "mcts_nodes": 10, "mcts_max_depth": 3}
COACD_PREPROCESS_RESOLUTION = 30  # voxel remesh of meshes that are not watertight
# voxels; at 10 000 voxels, or V-HACD's split depth cut from 10 to 6 (twice as fast on thin-walled
# mugs), the bowl's parts let the probe in it move (bench/collision.py)
VHACD_RESOLUTION = 20_000


@dataclass
class CollisionShape:
    """One object's collision geometry.

    Attributes:
        parts: convex meshes in the link frame (object axes, scale applied), metres.
        method: ``"convex_hull"``, ``"coacd"`` or ``"vhacd"``: what produced ``parts``.
        mass: density × volume of the parts, centre of mass and inertia (link frame).
    """

    parts: list[trimesh.Trimesh]
    method: str
    mass: MassProperties


@dataclass
class SupportSlab:
    """A support plane (``Plane.label == "support"`` with a polygon) as a static convex body.

    Attributes:
        name: ``support_<k>``, k = the plane's index in ``scene.background.planes``.
        plane_index: that k.
        mesh: the slab in the world frame (metres): the polygon, and the polygon moved
            ``SLAB_THICKNESS_M`` down, joined into one convex hull; its top face is the plane.
        top: (K, 3) the polygon in the world frame (the visible surface).
    """

    name: str
    plane_index: int
    mesh: trimesh.Trimesh
    top: np.ndarray


def fill_ratio(mesh: trimesh.Trimesh) -> float:
    """Volume of a closed mesh over the volume of its convex hull (1 for a convex solid), or 0
    when the mesh is not a closed volume (then it cannot be told convex)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if not mesh.is_volume:
            return 0.0
        hull = mesh.convex_hull.volume
        return float(mesh.volume / hull) if hull > 0 else 0.0


def decompose(mesh: trimesh.Trimesh, method: str, max_parts: int, seed: int = DECOMPOSITION_SEED
              ) -> list[trimesh.Trimesh]:
    """Approximate convex decomposition of ``mesh`` (any frame; parts come back in it).

    Args:
        method: ``"coacd"`` or ``"vhacd"``.
        max_parts: at most this many parts.
        seed: CoACD's random seed (V-HACD is deterministic).

    Returns:
        convex hulls of the parts (at least one).

    Raises:
        ExportError: the package is missing or produced nothing.
    """
    if method == "coacd":
        try:
            import coacd
        except ImportError as exc:
            raise ExportError("decomposer 'coacd' needs the coacd package (pip install coacd)") from exc
        coacd.set_log_level("error")
        preprocess = "off" if mesh.is_watertight else "on"
        raw = coacd.run_coacd(coacd.Mesh(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)),
                              threshold=COACD_THRESHOLD, max_convex_hull=int(max_parts), preprocess_mode=preprocess,
                              preprocess_resolution=COACD_PREPROCESS_RESOLUTION, resolution=COACD_RESOLUTION,
                              seed=int(seed), **COACD_MCTS)
        parts = [trimesh.Trimesh(v, f, process=False) for v, f in raw]
    elif method == "vhacd":
        try:
            import vhacdx  # noqa: F401  (trimesh's convex_decomposition calls it)
        except ImportError as exc:
            raise ExportError("decomposer 'vhacd' needs the vhacdx package (pip install vhacdx)") from exc
        parts = mesh.convex_decomposition(maxConvexHulls=int(max_parts), resolution=VHACD_RESOLUTION)
        parts = parts if isinstance(parts, list) else [parts]
    else:
        raise ExportError(f"unknown decomposer {method!r}; choose coacd or vhacd")
    hulls = []
    for part in parts:
        with np.errstate(divide="ignore", invalid="ignore"):
            try:
                hull = part.convex_hull
            except Exception:  # qhull on a flat sliver: the part adds no volume
                continue
            if hull.volume > 1e-12:
                hulls.append(hull)
    if not hulls:
        raise ExportError(f"{method} convex decomposition produced no parts with volume")
    return hulls


def parts_mass_properties(parts: list[trimesh.Trimesh], density_kg_m3: float) -> MassProperties:
    """Mass properties of the solid made of ``parts`` (convex, one frame): mass = density × the
    summed volumes, centre of mass, inertia about it (parallel-axis sum), in the parts' frame.

    Overlapping parts count twice where they overlap (as MuJoCo and PhysX do when they sum
    per-shape mass).
    """
    volumes = np.array([float(p.volume) for p in parts])
    centres = np.array([p.center_mass for p in parts])
    volume = float(volumes.sum())
    centre = (volumes[:, None] * centres).sum(axis=0) / volume
    inertia = np.zeros((3, 3))
    for part, v, c in zip(parts, volumes, centres):
        p = part.copy()
        p.density = density_kg_m3
        d = c - centre
        inertia += np.asarray(p.moment_inertia) + density_kg_m3 * v * ((d @ d) * np.eye(3) - np.outer(d, d))
    return MassProperties(volume=volume, mass=density_kg_m3 * volume, center=centre,
                          inertia=0.5 * (inertia + inertia.T), from_hull=False)


def collision_shape(obj: ExportObject, options: ExportOptions) -> CollisionShape:
    """The convex parts of ``obj`` (see the module docstring) and their mass properties.

    Raises:
        ExportError: naming the object, when its mesh encloses no volume or decomposition fails.
    """
    mass_properties(obj, options.density_kg_m3)  # rejects flat meshes with a clear reason
    link = obj.mesh_link()
    decompose_it = options.collision == "decomposition" or (
        options.collision == "auto" and fill_ratio(link) < CONVEX_FILL)
    if decompose_it:
        try:
            parts = decompose(link, options.decomposer, options.max_convex_hulls)
        except ExportError as exc:
            raise ExportError(f"object {obj.id} ({obj.label}): {exc}") from exc
        method = options.decomposer
    else:
        parts, method = [link.convex_hull], "convex_hull"
    return CollisionShape(parts=parts, method=method, mass=parts_mass_properties(parts, options.density_kg_m3))


def collision_shapes(objects: list[ExportObject], options: ExportOptions) -> dict[str, CollisionShape]:
    """:func:`collision_shape` of every object, by object name (computed once per export)."""
    return {o.name: collision_shape(o, options) for o in objects}


def support_slabs(scene: Scene, world: WorldFrame) -> list[SupportSlab]:
    """Static slabs for the scene's support planes that have a polygon (world frame, metres).

    The polygon (``Plane.polygon``, optical frame) is moved into the world and projected onto the
    plane; the slab is its convex hull extruded ``SLAB_THICKNESS_M`` straight down (world -z).
    Planes that are not supports, or have no polygon of at least 3 corners, give no slab.
    """
    slabs = []
    for k, plane in enumerate(scene.background.planes):
        if plane.label != "support" or plane.polygon is None or len(plane.polygon) < 3:
            continue
        n, d = world.plane_to_world(plane)
        norm = np.linalg.norm(n)
        n, d = n / norm, d / norm
        top = world.points_to_world(np.asarray(plane.polygon, np.float64).reshape(-1, 3))
        top = top - np.outer(top @ n + d, n)
        below = top - np.array([0.0, 0.0, SLAB_THICKNESS_M])
        try:
            mesh = trimesh.convex.convex_hull(np.vstack([top, below]))
        except Exception as exc:  # qhull: a degenerate (collinear) polygon
            raise ExportError(f"support plane {k}: polygon is degenerate, cannot build a slab: {exc}") from exc
        slabs.append(SupportSlab(name=f"support_{k}", plane_index=k, mesh=mesh, top=top))
    return slabs
