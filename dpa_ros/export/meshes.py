"""Mesh exports (whole-scene GLB, per-object OBJ + MTL, coloured scene cloud PLY) and the mesh
preparation every writer shares (validation, decimation, colours, mass properties, collision
shapes, background plane patches).

All exported geometry is in the z-up world frame of :mod:`dpa_ros.export.frames`, in metres,
except where a docstring says "link frame": the object's own axes with its scale applied (what
a Gazebo model or a USD Xform holds below its pose).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from dpa_ros.core.fileio import atomic_write, atomic_write_bytes, atomic_write_text
from dpa_ros.core.scene import Scene, SceneObject
from dpa_ros.export.frames import WorldFrame
from dpa_ros.export.options import ExportError, ExportOptions
from dpa_ros.naming import object_name

DEFAULT_RGBA = np.array([180, 180, 180, 255], np.uint8)
PLANE_RGBA = np.array([128, 128, 128, 255], np.uint8)
PLANE_INLIER_M = 0.05   # cloud points this close to a plane give its exported extent
PLANE_MARGIN_M = 0.5    # margin around those points (or around the objects when no cloud)


@dataclass
class ExportObject:
    """A scene object ready to export.

    Attributes:
        id, label, score: from the scene.
        name: ``dpa_object_<id>`` (:func:`dpa_ros.naming.object_name`), the node / model / prim name in
            every export, equal to the TF frame of the node with its default ``frame_prefix``.
        mesh: validated (and decimated) mesh in the object's own frame, unscaled.
        colors: (V, 4) uint8 RGBA per vertex of ``mesh``.
        T_world_object: 4×4 similarity object → world (includes ``scale``), metres.
        scale: uniform scale.
    """

    id: int
    label: str
    score: float
    name: str
    mesh: trimesh.Trimesh
    colors: np.ndarray
    T_world_object: np.ndarray
    scale: float

    @property
    def R_world_object(self) -> np.ndarray:
        """Rotation (3×3, orthonormal) of the object in the world."""
        return self.T_world_object[:3, :3] / self.scale

    @property
    def t_world_object(self) -> np.ndarray:
        """Position (metres) of the object's origin in the world."""
        return self.T_world_object[:3, 3].copy()

    def mesh_link(self) -> trimesh.Trimesh:
        """The mesh in the link frame: object axes, scale applied, metres."""
        return trimesh.Trimesh(self.mesh.vertices * self.scale, self.mesh.faces, process=False)

    def mesh_world(self) -> trimesh.Trimesh:
        """The mesh placed in the world frame (scale and pose applied), with vertex colours."""
        verts = self.mesh.vertices @ self.T_world_object[:3, :3].T + self.T_world_object[:3, 3]
        return trimesh.Trimesh(verts, self.mesh.faces, vertex_colors=self.colors, process=False)

    @property
    def mean_rgba(self) -> np.ndarray:
        return self.colors.mean(axis=0).round().astype(np.uint8)


@dataclass
class MassProperties:
    """Rigid-body properties in the link frame (metres, kg).

    Attributes:
        volume: m³ of the closed mesh, or of its convex hull when the mesh is not a closed volume.
        mass: ``density × volume``, kg.
        center: centre of mass, link frame, metres.
        inertia: 3×3 inertia tensor about ``center``, link-frame axes, kg·m².
        from_hull: True when the convex hull stood in for an open mesh.
    """

    volume: float
    mass: float
    center: np.ndarray
    inertia: np.ndarray
    from_hull: bool


def _vertex_colors(mesh: trimesh.Trimesh) -> np.ndarray:
    """(V, 4) uint8 RGBA per vertex: vertex/face colours, sampled texture, material colour or grey."""
    visual = mesh.visual
    if visual is None or visual.kind is None:
        return np.tile(DEFAULT_RGBA, (len(mesh.vertices), 1))
    if visual.kind == "texture":
        if getattr(visual.material, "image", None) is None:  # untextured material: its main colour
            return np.tile(np.asarray(visual.material.main_color, np.uint8), (len(mesh.vertices), 1))
        # sample the texture at the UVs
        mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False, visual=visual.to_color())
    return np.asarray(mesh.visual.vertex_colors, np.uint8)


def _decimate(mesh: trimesh.Trimesh, colors: np.ndarray, budget: int) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Quadric edge-collapse decimation (Open3D) to at most ``budget`` faces, colours interpolated."""
    import open3d as o3d  # heavy import, only when decimating

    o3 = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices),
                                   o3d.utility.Vector3iVector(mesh.faces))
    o3.vertex_colors = o3d.utility.Vector3dVector(colors[:, :3] / 255.0)
    simple = o3.simplify_quadric_decimation(target_number_of_triangles=int(budget))
    simple.remove_unreferenced_vertices()
    out = trimesh.Trimesh(np.asarray(simple.vertices), np.asarray(simple.triangles), process=False)
    rgb = np.clip(np.asarray(simple.vertex_colors) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out, np.column_stack([rgb, np.full(len(rgb), 255, np.uint8)])


def prepare_object(obj: SceneObject, world: WorldFrame, options: ExportOptions) -> ExportObject:
    """Validate one scene object and bring it into the export world frame.

    Raises:
        ExportError: naming the object, when its mesh has no faces, non-finite vertices or
            out-of-range face indices, or its pose is not a similarity transform.
    """
    what = f"object {obj.id} ({obj.label})"
    mesh = obj.mesh
    if not isinstance(mesh, trimesh.Trimesh):
        raise ExportError(f"{what}: mesh is a {type(mesh).__name__}, not a triangle mesh")
    verts = np.asarray(mesh.vertices, np.float64)
    faces = np.asarray(mesh.faces)
    if len(faces) == 0 or len(verts) < 3:
        raise ExportError(f"{what}: mesh has no faces")
    if not np.all(np.isfinite(verts)):
        raise ExportError(f"{what}: mesh has non-finite vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise ExportError(f"{what}: mesh faces index vertices that do not exist")
    T = np.asarray(obj.T_camera_object, np.float64)
    scale = float(obj.scale)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)) or not scale > 0:
        raise ExportError(f"{what}: T_camera_object must be a finite 4x4 matrix and scale positive, "
                          f"got shape {T.shape}, scale {scale}")
    R = T[:3, :3] / scale
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
        raise ExportError(f"{what}: T_camera_object is not scale × rotation + translation with scale {scale}")
    colors = _vertex_colors(mesh)
    clean = trimesh.Trimesh(verts, faces, process=False)
    if options.face_budget is not None and len(faces) > options.face_budget:
        clean, colors = _decimate(clean, colors, options.face_budget)
    return ExportObject(id=int(obj.id), label=obj.label, score=float(obj.score), name=object_name(obj.id),
                        mesh=clean, colors=colors, T_world_object=world.pose_to_world(T), scale=scale)


def prepare_objects(scene: Scene, world: WorldFrame, options: ExportOptions) -> list[ExportObject]:
    """:func:`prepare_object` for every object; ids must be unique."""
    ids = [o.id for o in scene.objects]
    if len(set(ids)) != len(ids):
        raise ExportError(f"object ids must be unique, got {ids}")
    return [prepare_object(o, world, options) for o in scene.objects]


def mass_properties(obj: ExportObject, density_kg_m3: float) -> MassProperties:
    """Volume, mass and inertia of the object at ``density_kg_m3``, in its link frame.

    Uses the mesh itself when it is a closed, consistently wound volume, else its convex hull.

    Raises:
        ExportError: naming the object when neither encloses any volume (a flat mesh).
    """
    link = obj.mesh_link()
    with np.errstate(divide="ignore", invalid="ignore"):  # trimesh divides by a zero volume on flat meshes
        from_hull = not link.is_volume
        solid = link
        if from_hull:
            try:
                solid = link.convex_hull
            except Exception as exc:  # qhull raises its own error type on flat input
                raise ExportError(f"object {obj.id} ({obj.label}): mesh encloses no volume "
                                  f"(flat or degenerate), cannot compute mass/inertia: {exc}") from exc
        volume = float(solid.volume)
    if not volume > 1e-12:
        raise ExportError(f"object {obj.id} ({obj.label}): mesh encloses no volume (flat or degenerate), "
                          "cannot compute mass/inertia")
    solid.density = density_kg_m3
    inertia = np.asarray(solid.moment_inertia, np.float64)
    return MassProperties(volume=volume, mass=density_kg_m3 * volume, center=np.asarray(solid.center_mass),
                          inertia=0.5 * (inertia + inertia.T), from_hull=from_hull)


def plane_patches(scene: Scene, world: WorldFrame,
                  objects: list[ExportObject]) -> list[tuple[str, str, trimesh.Trimesh]]:
    """Finite world-frame rectangles (two triangles) for the background planes, except support
    planes with a polygon (those are exported as slabs, :func:`collision.support_slabs`).

    Each rectangle covers the cloud points within ``PLANE_INLIER_M`` of its plane (or, without
    such points, the objects and the camera projected onto it), plus ``PLANE_MARGIN_M``.
    Returns (name, label, mesh) with names ``<label>_<index>``; face normals point at the camera.
    """
    cloud = world.points_to_world(scene.cloud_points) if len(scene.cloud_points) else np.zeros((0, 3))
    fallback = np.vstack([world.T_world_camera[:3, 3]] + [o.mesh_world().vertices for o in objects])
    patches = []
    for i, plane in enumerate(scene.background.planes):
        if plane.label == "support" and plane.polygon is not None and len(plane.polygon) >= 3:
            continue
        n, d = world.plane_to_world(plane)
        norm = np.linalg.norm(n)
        n, d = n / norm, d / norm
        support = cloud[np.abs(cloud @ n + d) < PLANE_INLIER_M] if len(cloud) else cloud
        if len(support) < 3:
            support = fallback
        support = support - np.outer(support @ n + d, n)
        a = np.cross(n, [0.0, 0.0, 1.0])
        a = a / np.linalg.norm(a) if np.linalg.norm(a) > 1e-6 else np.array([1.0, 0.0, 0.0])
        b = np.cross(n, a)
        ua, ub = support @ a, support @ b
        lo_a, hi_a = ua.min() - PLANE_MARGIN_M, ua.max() + PLANE_MARGIN_M
        lo_b, hi_b = ub.min() - PLANE_MARGIN_M, ub.max() + PLANE_MARGIN_M
        base = -d * n
        corners = np.array([base + s * a + t * b for s, t in
                            ((lo_a, lo_b), (hi_a, lo_b), (hi_a, hi_b), (lo_a, hi_b))])
        faces = np.array([[0, 1, 2], [0, 2, 3]])
        if np.cross(corners[1] - corners[0], corners[2] - corners[0]) @ n < 0:
            faces = faces[:, ::-1]
        patch = trimesh.Trimesh(corners, faces, vertex_colors=np.tile(PLANE_RGBA, (4, 1)), process=False)
        patches.append((f"{plane.label}_{i}", plane.label, patch))
    return patches


def write_obj(path: Path, mesh: trimesh.Trimesh, colors: np.ndarray, name: str, header: list[str]) -> list[Path]:
    """Write ``mesh`` as OBJ with per-vertex RGB (``v x y z r g b``) and a sibling MTL whose
    diffuse colour is the mean vertex colour (for viewers that ignore vertex colours).

    ``header`` lines become ``#`` comments. Both files are atomic; the MTL is written first.
    Returns [obj, mtl].
    """
    mtl_path = path.with_suffix(".mtl")
    rgb = colors[:, :3].astype(np.float64) / 255.0
    kd = rgb.mean(axis=0)
    mtl = (f"# material of {path.name}\nnewmtl {name}\nKa 0 0 0\nKd {kd[0]:.6f} {kd[1]:.6f} {kd[2]:.6f}\n"
           "Ks 0 0 0\nd 1\nillum 1\n")
    atomic_write_text(mtl_path, mtl)
    lines = [f"# {h}" for h in header] + [f"mtllib {mtl_path.name}", f"o {name}", f"usemtl {name}"]
    v = np.column_stack([mesh.vertices, rgb])
    lines += [f"v {r[0]:.7g} {r[1]:.7g} {r[2]:.7g} {r[3]:.4f} {r[4]:.4f} {r[5]:.4f}" for r in v]
    lines += [f"f {a} {b} {c}" for a, b, c in np.asarray(mesh.faces) + 1]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return [path, mtl_path]


def frame_header(world: WorldFrame) -> list[str]:
    """Comment lines describing the world frame, for text formats."""
    return ["dpa_ros export; " + world.metadata()["convention"],
            "dpa_ros world_frame " + json.dumps(world.metadata())]


def write_object_objs(out_dir: Path, objects: list[ExportObject], world: WorldFrame) -> list[Path]:
    """One ``object_<id>.obj`` + ``.mtl`` per object under ``out_dir``, world frame, metres."""
    written: list[Path] = []
    for obj in objects:
        header = frame_header(world) + [f"object id={obj.id} label={json.dumps(obj.label)} score={obj.score:.4f} "
                                        "(vertices in the world frame, scale and pose applied)"]
        written += write_obj(out_dir / f"{obj.name}.obj", obj.mesh_world(), obj.colors, obj.name, header)
    return written


#: World (z up) to glTF (+Y up, REP 103 x stays x), (x, y, z) -> (x, z, -y), a -90 deg turn about x.
T_GLTF_WORLD = np.array([[1.0, 0.0, 0.0, 0.0],
                         [0.0, 0.0, 1.0, 0.0],
                         [0.0, -1.0, 0.0, 0.0],
                         [0.0, 0.0, 0.0, 1.0]])


def write_glb(path: Path, objects: list[ExportObject], patches: list[tuple[str, str, trimesh.Trimesh]],
              world: WorldFrame, z_up: bool = False) -> Path:
    """The whole scene as one binary glTF, metres, +Y up as glTF 2.0 defines it.

    Coordinates are the z-up world frame's turned by :data:`T_GLTF_WORLD` (glTF x = world x,
    glTF y = world z, glTF z = -world y), so every viewer shows the floor at the bottom; with
    ``z_up`` they are the world frame's as they are (for tools that expect z up and ignore glTF's
    convention). Nodes: ``dpa_object_<id>`` (:func:`dpa_ros.naming.object_name`; object-frame mesh,
    node matrix = that turn @ T_world_object including scale, vertex colours, mesh extras
    ``{id, label, score}``) and the ``<label>_<i>`` background plane ``patches`` of
    :func:`plane_patches`. The scene's extras ``dpa_ros_world_frame`` hold the frame metadata
    plus ``gltf_up_axis`` (``"+Y"``, or ``"+Z"`` with ``z_up``).
    """
    T_out_world = np.eye(4) if z_up else T_GLTF_WORLD
    glb = trimesh.Scene()
    glb.metadata["dpa_ros_world_frame"] = dict(world.metadata(), gltf_up_axis="+Z" if z_up else "+Y")
    for obj in objects:
        mesh = trimesh.Trimesh(obj.mesh.vertices, obj.mesh.faces, vertex_colors=obj.colors, process=False)
        mesh.metadata.update({"id": obj.id, "label": obj.label, "score": obj.score})
        glb.add_geometry(mesh, node_name=obj.name, geom_name=obj.name, transform=T_out_world @ obj.T_world_object)
    for name, label, patch in patches:
        patch.metadata.update({"label": label, "background": True})
        glb.add_geometry(patch, node_name=name, geom_name=name, transform=T_out_world)
    data = glb.export(file_type="glb")
    return atomic_write_bytes(path, data)


def write_cloud_ply(path: Path, scene: Scene, world: WorldFrame) -> Path:
    """The scene cloud as binary little-endian PLY, world frame, metres, with uchar RGB.

    Header comments carry the frame metadata. Points without colours get ``DEFAULT_RGBA``.
    """
    points = world.points_to_world(scene.cloud_points).astype(np.float32)
    colors = np.asarray(scene.cloud_colors, np.uint8)[:, :3] if len(scene.cloud_colors) == len(points) \
        else np.tile(DEFAULT_RGBA[:3], (len(points), 1))
    rows = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                        ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    rows["x"], rows["y"], rows["z"] = points.T
    rows["red"], rows["green"], rows["blue"] = colors.T
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {line}" for line in frame_header(world)]
    header += [f"element vertex {len(points)}", "property float x", "property float y", "property float z",
               "property uchar red", "property uchar green", "property uchar blue", "end_header"]
    data = ("\n".join(header) + "\n").encode("ascii") + rows.tobytes()
    return atomic_write_bytes(path, data)


def write_mesh_file(path: Path, mesh: trimesh.Trimesh) -> Path:
    """Write a plain (colourless) mesh, format from the suffix, atomically."""
    return atomic_write(path, lambda p: mesh.export(p, file_type=path.suffix.lstrip(".")))
