"""A mesh's similarity pose (rotation, translation, uniform scale) fitted to depth points seen from
several camera poses, in one fixed frame.

Residuals follow the depth camera, weighted by 1/σ² with σ ∝ depth²:

* :func:`refit_similarity` (closest-point steps, a wide basin): a point is matched to the closest
  of the mesh faces that face its own camera (a point seen through a thin part is not pulled onto
  its back), the worst pairs left out of each step; two-sided, the surface samples a view should
  have measured are also pulled to its nearest points.
* :func:`refine_point_to_plane` (Gauss-Newton, a few steps to the basin's floor): each point's
  residual along its camera ray, where the depth error lies, and the views' silhouettes.

Candidate poses are compared by one robust cost over points, free space and silhouettes
(:func:`truncated_costs`); :func:`turned_starts` gives the starts a single view's ambiguities call for.

Frames: ``T`` maps the mesh (its own frame and units, unscaled) into the fixed frame, scale
included (upper-left block ``scale * R``). Distances are in metres.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_ros.geometry.fields import raycasting_scene

#: Surface samples per mesh for the terms that look at the mesh from each view.
MESH_SAMPLES = 600

#: Least margin (pixels) kept around a mask for its distance map (:class:`Silhouette`).
SILHOUETTE_PAD_PX = 20

#: The standard deviation of a mask's outline, pixels: the silhouette term's unit.
SILHOUETTE_SIGMA_PX = 1.0

#: Point-triangle search structures of the meshes in use, by ``id(mesh)`` (the mesh kept alongside).
_SURFACES: dict[int, tuple] = {}


def apply_transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N, 3) mapped by the 4×4 ``T``."""
    return points @ T[:3, :3].T + T[:3, 3]


def _surface(mesh: trimesh.Trimesh, faces: np.ndarray | None = None):
    """The point-triangle search structure of ``mesh`` (or of its ``faces`` subset, bool per face), cached."""
    key = (id(mesh), None if faces is None else hash(np.packbits(faces).tobytes()))
    hit = _SURFACES.get(key)
    if hit is None or hit[0] is not mesh:
        if len(_SURFACES) > 256:
            _SURFACES.clear()
        part = mesh if faces is None else trimesh.Trimesh(mesh.vertices, mesh.faces[faces], process=False)
        hit = _SURFACES[key] = (mesh, raycasting_scene(part))
    return hit[1]


def facing_faces(mesh: trimesh.Trimesh, T: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Bool per face of the mesh placed by ``T``: whether its front side faces the point ``origin``
    (fixed frame, a camera's optical centre). A depth point is an observation of such a face."""
    local = apply_transform(np.linalg.inv(T), np.asarray(origin, float)[None])[0]
    centres = np.asarray(mesh.triangles_center)
    return np.einsum("ij,ij->i", np.asarray(mesh.face_normals), local - centres) > 0


def _closest(mesh: trimesh.Trimesh, T: np.ndarray, points: np.ndarray,
             faces: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distances, closest points in the mesh's frame, their face indices into ``mesh.faces``) of
    fixed-frame ``points`` to the mesh placed by ``T`` (only its ``faces``, bool per face, if given)."""
    import open3d as o3d  # loaded with raycasting_scene already

    if faces is not None and not faces.any():
        faces = None
    local = apply_transform(np.linalg.inv(T), points)
    hit = _surface(mesh, faces).compute_closest_points(o3d.core.Tensor(local.astype(np.float32)))
    closest = hit["points"].numpy().astype(float)
    face = hit["primitive_ids"].numpy().astype(np.int64)
    if faces is not None:
        face = np.flatnonzero(faces)[face]
    return np.linalg.norm(apply_transform(T, closest) - points, axis=1), closest, face


def surface_distance(mesh: trimesh.Trimesh, T: np.ndarray, points: np.ndarray,
                     faces: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances (metres) of fixed-frame ``points`` to the mesh placed by ``T`` (only its ``faces``,
    bool per face, when given), and their closest points on the mesh in its own frame."""
    d, closest, _ = _closest(mesh, T, points, faces)
    return d, closest


class Silhouette:
    """An object's mask in one view, kept as the distance to it: per pixel of a box around the mask,
    the distance (pixels) to the nearest mask pixel and that pixel (0 inside the mask).

    Pixels beyond the box are taken to the box's nearest edge first (their distance then grows by
    that step).
    """

    def __init__(self, mask: np.ndarray):
        from scipy.ndimage import distance_transform_edt

        mask = np.asarray(mask, bool)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        self.shape = mask.shape
        if not len(rows):
            self.empty = True
            return
        self.empty = False
        pad_v = max(SILHOUETTE_PAD_PX, (rows[-1] - rows[0]) // 4)
        pad_u = max(SILHOUETTE_PAD_PX, (cols[-1] - cols[0]) // 4)
        self.v0, self.u0 = max(0, rows[0] - pad_v), max(0, cols[0] - pad_u)
        v1, u1 = min(mask.shape[0], rows[-1] + pad_v + 1), min(mask.shape[1], cols[-1] + pad_u + 1)
        crop = mask[self.v0:v1, self.u0:u1]
        distance, nearest = distance_transform_edt(~crop, return_indices=True)
        self.distance = distance.astype(np.float32)
        self.nearest = nearest.astype(np.int32)

    def nearest_pixel(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For pixel coordinates (u, v) (float, any; integers are pixel centres), how far (pixels)
        the pixel they fall in lies outside the mask's outline (half a pixel short of the nearest
        mask pixel's centre; 0 inside the mask), and that nearest mask pixel's (u, v)."""
        if self.empty:
            return np.full(len(u), np.inf), u.copy(), v.copy()
        h, w = self.distance.shape
        ru, rv = np.round(u).astype(np.int64) - self.u0, np.round(v).astype(np.int64) - self.v0
        cu, cv = np.clip(ru, 0, w - 1), np.clip(rv, 0, h - 1)
        beyond = np.hypot(ru - cu, rv - cv)  # pixels beyond the box, to its nearest edge
        outside = np.clip(self.distance[cv, cu] + beyond - 0.5, 0.0, None)
        nu = self.nearest[1, cv, cu].astype(float) + self.u0
        nv = self.nearest[0, cv, cu].astype(float) + self.v0
        return outside, nu, nv


@dataclass
class ViewPoints:
    """One view's depth points of an object, and that view's own fit of it.

    Attributes:
        points: (N, 3) depth points in the fixed frame, metres.
        origin: (3,) the view's camera optical centre in the fixed frame, metres.
        weight: (N,) 1 / σ² of each point up to one common factor: a depth camera's noise grows
            with depth squared (σ ∝ z², z the point's depth in its view), so weight = z⁻⁴ (m⁻⁴).
        T_fit: 4×4 the view's own fit of the object (``mesh`` → fixed frame, scale included).
        mesh: the mesh of that fit.
        camera: the view's intrinsics (the size of ``depth``).
        depth: (H, W) the view's z-depth, metres (NaN or 0: no measurement); shared by the view's objects.
        T_camera_fixed: 4×4 fixed frame → the view's camera optical frame.
        depth_near: (H, W) the nearest measured depth within one pixel of each pixel (NaN: none), the
            free-space test's depth (a sample on an object's outline is not taken for seen through);
            :func:`nearest_depth` of ``depth`` when not given.
        silhouette: the object's mask in this view (None: no silhouette term for this view).
    """

    points: np.ndarray
    origin: np.ndarray
    weight: np.ndarray
    T_fit: np.ndarray
    mesh: trimesh.Trimesh
    camera: CameraModel
    depth: np.ndarray
    T_camera_fixed: np.ndarray
    depth_near: np.ndarray | None = None
    silhouette: Silhouette | None = None

    def __post_init__(self) -> None:
        self._tree = None
        if self.depth_near is None:
            self.depth_near = nearest_depth(self.depth)

    @property
    def tree(self):
        """A k-d tree of :attr:`points` (built on first use)."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.points)
        return self._tree


def nearest_depth(depth: np.ndarray) -> np.ndarray:
    """Per pixel, the nearest valid depth (metres, > 0) of its 3×3 neighbourhood; NaN where none."""
    from scipy.ndimage import minimum_filter

    d = np.asarray(depth, float)
    d = np.where(d > 0, d, np.inf)  # NaN compares False
    near = minimum_filter(d, size=3, mode="nearest")
    return np.where(np.isfinite(near), near, np.nan)


def _mesh_samples(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """:data:`MESH_SAMPLES` surface points of ``mesh`` (its own frame) and their face normals, cached
    with the mesh's search structure."""
    key = ("samples", id(mesh))
    hit = _SURFACES.get(key)
    if hit is None or hit[0] is not mesh:
        points, faces = trimesh.sample.sample_surface_even(mesh, MESH_SAMPLES, seed=0)
        if len(points) < MESH_SAMPLES // 2:  # sample_surface_even can fall short on small meshes
            points, faces = trimesh.sample.sample_surface(mesh, MESH_SAMPLES, seed=0)
        hit = _SURFACES[key] = (mesh, (np.asarray(points, float), np.asarray(mesh.face_normals)[faces]))
    return hit[1]


@dataclass
class SampleView:
    """Where the surface samples of a placed mesh fall in one view.

    Attributes:
        seen: (M,) bool, samples the view should have measured: their face turns to the camera, they
            lie in front of it and inside the image, and no measured depth lies nearer than them by
            more than the margin.
        z: (M,) the samples' depth in the view, metres (NaN where not in front or outside).
        z_observed: (M,) the measured depth at each sample's pixel, metres (NaN: none).
        z_near: (M,) the nearest measured depth within one pixel of it (``depth_near``), metres.
        unhidden: (M,) bool, samples in front of the camera, inside the image and not hidden by nearer
            measured depth, whichever way their face turns: they must fall inside the object's mask.
        uv: (M, 2) the samples' pixel coordinates (-1 where not in front).
    """

    seen: np.ndarray
    z: np.ndarray
    z_observed: np.ndarray
    z_near: np.ndarray
    unhidden: np.ndarray
    uv: np.ndarray


def sample_view(mesh: trimesh.Trimesh, T: np.ndarray, view: ViewPoints, margin_m: float) -> SampleView:
    """The mesh's surface samples placed by ``T`` (mesh → fixed frame) seen from ``view``."""
    samples, normals = _mesh_samples(mesh)
    origin_local = apply_transform(np.linalg.inv(T), view.origin[None])[0]
    facing = np.einsum("ij,ij->i", normals, origin_local - samples) > 0
    p = apply_transform(view.T_camera_fixed @ T, samples)
    camera = view.camera
    front = p[:, 2] > 1e-3
    uv = np.full((len(p), 2), -1.0)
    uv[front] = camera.project(p[front])
    u, v = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
    inside = front & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    z_observed, z_near = np.full(len(p), np.nan), np.full(len(p), np.nan)
    z_observed[inside] = view.depth[v[inside], u[inside]]
    z_observed[~(z_observed > 0)] = np.nan
    z_near[inside] = view.depth_near[v[inside], u[inside]]
    z = np.where(inside, p[:, 2], np.nan)
    with np.errstate(invalid="ignore"):
        hidden = z_observed < z - margin_m
    return SampleView(facing & inside & ~hidden, z, z_observed, z_near, inside & ~hidden, uv)


def _silhouette_rows(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints], margin_m: float,
                     seen_views: list[SampleView] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(placed samples x, targets q, distances in pixels, weights) over every view with a
    silhouette: each unhidden surface sample that falls outside the object's mask, paired with the
    nearest mask pixel's point at the sample's own depth (so the pull is across the ray, not along
    it), and how far outside the outline it falls (:meth:`Silhouette.nearest_pixel`). Weight:
    1 / σ² of that lateral distance, σ = :data:`SILHOUETTE_SIGMA_PX` at the sample's depth (m⁻²).
    ``seen_views``: :func:`sample_view` of each view, when already computed."""
    samples, _ = _mesh_samples(mesh)
    xs, qs, px, ws = [], [], [], []
    for k, view in enumerate(views):
        if view.silhouette is None:
            continue
        seen = seen_views[k] if seen_views is not None else sample_view(mesh, T, view, margin_m)
        idx = np.flatnonzero(seen.unhidden)
        if not len(idx):
            continue
        dist, nu, nv = view.silhouette.nearest_pixel(seen.uv[idx, 0], seen.uv[idx, 1])
        out = dist > 0
        idx, dist, nu, nv = idx[out], dist[out], nu[out], nv[out]
        if not len(idx):
            continue
        z = seen.z[idx]
        camera = view.camera
        q_cam = np.stack([(nu - camera.cx) * z / camera.fx, (nv - camera.cy) * z / camera.fy, z], axis=1)
        xs.append(apply_transform(T, samples[idx]))
        qs.append(apply_transform(np.linalg.inv(view.T_camera_fixed), q_cam))
        px.append(dist)
        ws.append((camera.fx / (SILHOUETTE_SIGMA_PX * z)) ** 2)
    if not xs:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(qs), np.concatenate(px), np.concatenate(ws)


def _residuals(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints]) -> tuple[np.ndarray, np.ndarray]:
    """(distances, closest mesh points) of every view's points to the faces of the placed mesh
    that face that view's camera, views concatenated."""
    out = [surface_distance(mesh, T, v.points, facing_faces(mesh, T, v.origin)) for v in views]
    return np.concatenate([d for d, _ in out]), np.concatenate([c for _, c in out])


#: Least depth noise assumed, in metres per square metre of depth (σ = this × z²), so that a
#: rendered or very clean depth map does not let sub-millimetre residuals decide between candidates.
MIN_DEPTH_SIGMA = 5e-4

#: Least |cos| between a point's ray and the surface it hits, in the along-ray weights (grazing hits).
MIN_RAY_COSINE = 0.3


def _ray_hits(mesh: trimesh.Trimesh, T: np.ndarray, view: ViewPoints
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where each of the view's points' rays (from its camera centre through the point) first hits
    the mesh placed by ``T``: (hit bool, hit points in the fixed frame, unit face normals there,
    signed along-ray residual in metres, the point's distance from the camera minus the hit's).

    A depth camera's error lies along its rays, so this residual is what its noise perturbs; the
    closest-point distance is not once the noise exceeds the mesh's thin parts."""
    import open3d as o3d

    inv = np.linalg.inv(T)
    origin = apply_transform(inv, view.origin[None])[0]
    direction = apply_transform(inv, view.points) - origin
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    rays = np.concatenate([np.broadcast_to(origin, direction.shape), direction], axis=1).astype(np.float32)
    cast = _surface(mesh).cast_rays(o3d.core.Tensor(rays))
    t = cast["t_hit"].numpy().astype(float)
    hit = np.isfinite(t)
    x = apply_transform(T, origin + direction * np.where(hit, t, 0.0)[:, None])
    R = T[:3, :3] / np.cbrt(abs(np.linalg.det(T[:3, :3])))
    normals = cast["primitive_normals"].numpy().astype(float) @ R.T
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    r = np.linalg.norm(view.points - view.origin, axis=1) - np.linalg.norm(x - view.origin, axis=1)
    return hit, x, normals, np.where(hit, r, np.nan)


def _point_errors(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints]) -> np.ndarray:
    """Every view's points' noise-normalised residuals (metres × depth⁻², views concatenated): the
    along-ray residual where the point's ray hits the placed mesh (at most the distance to the
    closest of the faces that face its camera over :data:`MIN_RAY_COSINE`), else that distance."""
    out = []
    for view in views:
        hit, _, _, r = _ray_hits(mesh, T, view)
        closest = surface_distance(mesh, T, view.points, facing_faces(mesh, T, view.origin))[0]
        # a ray that grazes a face (or slips past an edge onto a far one) turns a millimetre into
        # centimetres along it: no more than a plane at MIN_RAY_COSINE would
        d = np.where(hit, np.minimum(np.abs(np.nan_to_num(r, nan=np.inf)), closest / MIN_RAY_COSINE), closest)
        out.append(d * np.sqrt(view.weight))
    return np.concatenate(out)


#: Trust region of a Gauss-Newton step of :func:`refine_point_to_plane`: turn (radians) and log-scale.
MAX_STEP_TURN_RAD = 0.2
MAX_STEP_LOG_SCALE = 0.1


def is_valid_similarity(T: np.ndarray) -> bool:
    """Whether ``T`` is a finite similarity with a usable scale (a step that collapsed the mesh to a
    point or blew it up is not)."""
    if not np.all(np.isfinite(T)):
        return False
    scale = np.cbrt(np.linalg.det(T[:3, :3]))
    return bool(1e-6 < scale < 1e6)


def _umeyama_weighted(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Similarity transform (4×4) minimising Σ wᵢ ‖s R srcᵢ + t − dstᵢ‖² (weighted Umeyama 1991)."""
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd((xd * w[:, None]).T @ xs)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    var = float(w @ (xs ** 2).sum(1))
    s = float(np.trace(np.diag(S) @ D) / var) if var > 0 else 1.0
    T = np.eye(4)
    T[:3, :3] = s * R
    T[:3, 3] = mu_d - s * R @ mu_s
    return T


def _reverse_pairs(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints],
                   margin_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mesh-frame samples, their nearest depth points, weights) for every view: each surface sample
    the view should have measured (:func:`sample_view`) paired with that view's nearest point."""
    samples, _ = _mesh_samples(mesh)
    src, dst, weight = [], [], []
    for view in views:
        seen = sample_view(mesh, T, view, margin_m)
        if not seen.seen.any():
            continue
        _, nearest = view.tree.query(apply_transform(T, samples[seen.seen]))
        src.append(samples[seen.seen])
        dst.append(view.points[nearest])
        weight.append(seen.z[seen.seen] ** -4.0)
    if not src:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(src), np.concatenate(dst), np.concatenate(weight)


def refit_similarity(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints], iterations: int,
                     two_sided: bool = False, margin_m: float = 0.05) -> np.ndarray:
    """Weighted similarity ICP of the mesh onto the views' points from ``T``: each step pairs every
    point with its closest point on the faces that face its view's camera, keeps the pairs whose
    noise-normalised distance (distance × √weight) is within 2.5 × its median (at least 3 ×
    :data:`MIN_DEPTH_SIGMA`: clean depth keeps the points on an edge), and solves the
    similarity weighted by the points' weights. Returns the refit 4×4 ``T_fixed_object``.

    ``two_sided`` also pairs each surface sample a view should have measured (not hidden by nearer
    depth by more than ``margin_m``, metres) with that view's nearest point, trimmed the same way:
    a wider basin (a pose far off is pulled in by the parts of the mesh that no point explains),
    at the price of a bias towards the points' extent (use it to start, then refine one-sided).
    """
    weight = np.concatenate([v.weight for v in views])
    targets = np.concatenate([v.points for v in views])
    for _ in range(iterations):
        d, closest = _residuals(mesh, T, views)
        e = d * np.sqrt(weight)
        keep = e <= max(2.5 * float(np.median(e)), 3.0 * MIN_DEPTH_SIGMA)
        if keep.sum() < 10:
            break
        src, dst, w = closest[keep], targets[keep], weight[keep]
        if two_sided:
            r_src, r_dst, r_w = _reverse_pairs(mesh, T, views, margin_m)
            if len(r_src):
                r_e = np.linalg.norm(apply_transform(T, r_src) - r_dst, axis=1) * np.sqrt(r_w)
                r_keep = r_e <= 2.5 * np.median(r_e) + 1e-9
                src, dst = np.concatenate([src, r_src[r_keep]]), np.concatenate([dst, r_dst[r_keep]])
                w = np.concatenate([w, r_w[r_keep]])
        T_next = _umeyama_weighted(src, dst, w)
        if not is_valid_similarity(T_next):
            break
        T = T_next
    return T


def _rotation(omega: np.ndarray) -> np.ndarray:
    """The rotation matrix of the rotation vector ``omega`` (radians, Rodrigues)."""
    angle = float(np.linalg.norm(omega))
    if angle < 1e-12:
        return np.eye(3)
    k = omega / angle
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * K + (1.0 - np.cos(angle)) * K @ K


def refine_point_to_plane(mesh: trimesh.Trimesh, T: np.ndarray, views: list[ViewPoints], iterations: int,
                          margin_m: float = 0.05, tolerance: float = 1e-5) -> np.ndarray:
    """Gauss-Newton refinement of the similarity ``T`` on every view's points' along-ray residuals
    (linearised on the plane their ray hits; where it misses the mesh, the point-to-plane distance
    to the closest of the faces that face their camera), trimmed as in :func:`refit_similarity`
    and weighted 1/σ² with the depth noise σ estimated from them, and on
    the views' silhouettes (:func:`_silhouette_rows`: samples that fall more than 1 σ outside the
    object's mask are pulled across their ray back to that distance, σ = 1 px, Huber-weighted
    beyond 3 σ).
    Unlike closest-point steps it does not crawl along a surface, so it converges in a few steps
    from a pose within the basin. Stops when a step moves the points by less than ``tolerance``
    (metres, root mean square). Returns the refined 4×4."""
    weight = np.concatenate([v.weight for v in views])
    targets = np.concatenate([v.points for v in views])
    face_normals = np.asarray(mesh.face_normals, float)
    for _ in range(iterations):
        xs_, ns_, ds_, cos_ = [], [], [], []
        for view in views:
            hit, x, n, r = _ray_hits(mesh, T, view)
            d = np.abs(r)
            cos = np.abs(np.einsum("ij,ij->i", n, (view.points - view.origin)
                                   / np.linalg.norm(view.points - view.origin, axis=1, keepdims=True)))
            if not hit.all():  # rays past the mesh: the closest of the faces facing the camera
                dc, closest, face = _closest(mesh, T, view.points[~hit], facing_faces(mesh, T, view.origin))
                R = T[:3, :3] / np.cbrt(abs(np.linalg.det(T[:3, :3])))
                x[~hit], n[~hit], d[~hit], cos[~hit] = apply_transform(T, closest), face_normals[face] @ R.T, dc, 1.0
            xs_.append(x), ns_.append(n), ds_.append(d), cos_.append(np.maximum(cos, MIN_RAY_COSINE))
        x, n, d, cos = (np.concatenate(a) for a in (xs_, ns_, ds_, cos_))
        e = d * np.sqrt(weight)
        keep = e <= max(2.5 * float(np.median(e)), 3.0 * MIN_DEPTH_SIGMA)
        if keep.sum() < 10:
            break
        sigma = max(1.4826 * float(np.median(e)), MIN_DEPTH_SIGMA)  # metres per m² of depth
        # along-ray noise σ·z² is σ·z²·|cos| across the plane
        x, n, w = x[keep], n[keep], weight[keep] / (sigma * cos[keep]) ** 2
        r = np.einsum("ij,ij->i", n, targets[keep] - x)
        xs, qs, px, ws = _silhouette_rows(mesh, T, views, margin_m)
        lateral = np.linalg.norm(qs - xs, axis=1)
        out = (px > SILHOUETTE_SIGMA_PX) & (lateral > 1e-12)  # within 1 σ of the outline: no pull
        if out.any():
            xs, qs, px, ws, lateral = xs[out], qs[out], px[out], ws[out], lateral[out]
            excess = px - SILHOUETTE_SIGMA_PX
            huber = np.minimum(1.0, 3.0 * SILHOUETTE_SIGMA_PX / excess)
            x = np.concatenate([x, xs])
            n = np.concatenate([n, (qs - xs) / lateral[:, None]])
            r = np.concatenate([r, excess / (SILHOUETTE_SIGMA_PX * np.sqrt(ws))])  # pixels → metres
            w = np.concatenate([w, ws * huber])
        c = (w @ x) / w.sum()
        a = x - c
        J = np.concatenate([np.cross(a, n), np.einsum("ij,ij->i", n, a)[:, None], n], axis=1)  # ω, log s, t
        H = (J * w[:, None]).T @ J
        H += 1e-6 * np.trace(H) / 7.0 * np.eye(7)  # a plane alone does not fix the scale or its slide
        step = np.linalg.solve(H, (J * w[:, None]).T @ r)
        if not np.all(np.isfinite(step)):
            break
        # a trust region: at most MAX_STEP_TURN_RAD of turn and MAX_STEP_LOG_SCALE of scale per step
        step *= min(1.0, MAX_STEP_TURN_RAD / max(float(np.linalg.norm(step[:3])), 1e-12),
                    MAX_STEP_LOG_SCALE / max(abs(float(step[3])), 1e-12))
        G = np.eye(4)
        G[:3, :3] = np.exp(step[3]) * _rotation(step[:3])
        G[:3, 3] = c + step[4:] - G[:3, :3] @ c
        if not is_valid_similarity(G @ T):
            break
        T = G @ T
        moved = np.sqrt(np.mean(np.sum((apply_transform(G, x) - x) ** 2, axis=1)))
        if moved < tolerance:
            break
    return T


def _cube_rotations() -> np.ndarray:
    """The 24 rotations that map the axes of a frame onto its axes, signs included ((24, 3, 3))."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            R = np.zeros((3, 3))
            R[range(3), perm] = signs
            if np.linalg.det(R) > 0:
                out.append(R)
    return np.array(out)


#: Start rotations of a refit, in the mesh's own frame (identity first).
CUBE_ROTATIONS = _cube_rotations()


def turned_starts(T: np.ndarray, mesh: trimesh.Trimesh) -> list[np.ndarray]:
    """``T`` with the mesh first turned by each of :data:`CUBE_ROTATIONS` about its box centre: the
    ambiguities one view can leave (a front taken for a back, an object seen on its side)."""
    centre = np.asarray(mesh.bounds, float).mean(0)
    out = []
    for R in CUBE_ROTATIONS:
        turn = np.eye(4)
        turn[:3, :3], turn[:3, 3] = R, centre - R @ centre
        out.append(T @ turn)
    return out


def _free_space_excess(seen_views: list[SampleView]) -> np.ndarray:
    """Per surface sample a view should have measured and every view (``seen_views``: the
    :func:`sample_view` of each), how far (noise-normalised: metres × depth⁻²) the nearest measured
    depth around its pixel lies behind it: the camera saw through space the placed mesh fills.
    Zero where it did not."""
    out = []
    for seen in seen_views:
        with np.errstate(invalid="ignore"):
            excess = np.nan_to_num((seen.z_near - seen.z) * seen.z ** -2.0, nan=0.0)
        out.append(np.where(seen.seen, np.clip(excess, 0.0, None), 0.0))
    return np.concatenate(out) if out else np.zeros(0)


def truncated_costs(candidates: list[tuple[np.ndarray, trimesh.Trimesh]], views: list[ViewPoints],
                    margin_m: float = 0.05) -> list[float]:
    """Per (T, mesh) candidate, a robust sum of squares in standard deviations, each term capped at 3:

    * every view's points: eᵢ / σ, eᵢ a point's along-ray residual (its distance to the faces
      facing its camera where its ray misses the mesh) times √weight, σ (one for all) 1.4826 × the
      median eᵢ of the best-fitting candidate, at least :data:`MIN_DEPTH_SIGMA`;
    * the free space: how far beyond 2 σ a view saw through a surface sample it should have
      measured (:func:`sample_view`, noise-normalised as eᵢ): what one-sided point distances miss,
      a mesh too large or parts of it where the views saw nothing;
    * the silhouettes: how far beyond 1 px (:data:`SILHOUETTE_SIGMA_PX`) an unhidden sample falls
      outside the object's mask, in those standard deviations.
    """
    errors = [_point_errors(mesh, T, views) for T, mesh in candidates]
    sigma = max(1.4826 * min(float(np.median(e)) for e in errors), MIN_DEPTH_SIGMA)
    costs = []
    for (T, mesh), e in zip(candidates, errors):
        e = np.minimum(e / sigma, 3.0)
        seen = [sample_view(mesh, T, view, margin_m) for view in views]  # shared by both terms
        f = np.clip(_free_space_excess(seen) / sigma - 2.0, 0.0, 3.0)
        px = _silhouette_rows(mesh, T, views, margin_m, seen)[2]
        g = np.clip(px / SILHOUETTE_SIGMA_PX - 1.0, 0.0, 3.0)
        costs.append(float(e @ e + f @ f + g @ g))
    return costs
