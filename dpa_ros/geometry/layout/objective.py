"""The layout objective L (:func:`_objective`, terms in :mod:`dpa_ros.geometry.layout`) and its lookups:
bilinear image maps, trilinear closest-point fields, the mask → silhouette nearest-neighbour search
and its tracker across Adam steps."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dpa_ros.geometry.layout.data import _Data


def _lookup2d(maps: torch.Tensor, u: torch.Tensor, v: torch.Tensor, W: int, H: int) -> torch.Tensor:
    """Bilinear values (G, C, K, n) of per-group maps (G, C, H, W) at pixel coordinates (G, K, n)."""
    grid = torch.stack([u * (2.0 / (W - 1)) - 1.0, v * (2.0 / (H - 1)) - 1.0], -1)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _closest_on_surface(R: torch.Tensor, s: torch.Tensor, c: torch.Tensor, data: _Data, n: int,
                        exact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` target points in the object frame of K poses per group and their closest surface
    points there, both (G, K, n, 3) in mesh units: from the closest-point field (trilinear,
    differentiable), or with ``exact`` from point-triangle search (no gradient; a field cannot
    resolve surfaces closer together than its cells, such as both faces of a thin board)."""
    X = data.X[:, :n]
    x_obj = torch.einsum("gkji,gkmj->gkmi", R, X[:, None] - c[:, :, None]) / s[..., None, None]
    if exact:
        return x_obj, data.exact_closest(x_obj)
    g = ((x_obj - data.lo[:, None, None]) / data.span[:, None, None]).clamp(0.0, 1.0)
    return x_obj, _lookup3d(data.field_slices, g)


def _lookup3d(slices: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Trilinear values (G, K, n, C) of per-group grids at box coordinates ``g`` (G, K, n, 3) in [0, 1]
    (x, y, z). The grids come as their z-slices stacked along the rows, ``slices`` (G, C, D·D, D) (row
    z·D + y, column x): two bilinear lookups, in the slices below and above each point, blended
    linearly in z. That is trilinear interpolation with its gradients, and about twice as fast on
    a CPU as ``grid_sample`` in 3D, whose CPU kernel is not vectorised."""
    G, K = g.shape[:2]
    D = slices.shape[-1]
    x, y, z = (g * (D - 1)).unbind(-1)                              # node units
    k0 = torch.floor(z.detach()).clamp(max=D - 2)
    fz = (z - k0)[:, None]
    gx = x * (2.0 / (D - 1)) - 1.0
    rows = torch.cat([y + k0 * D, y + (k0 + 1) * D], 1) * (2.0 / (D * D - 1)) - 1.0
    grid = torch.stack([torch.cat([gx, gx], 1), rows], -1)                          # (G, 2K, n, 2)
    v = F.grid_sample(slices, grid, mode="bilinear", padding_mode="border", align_corners=True)   # (G, C, 2K, n)
    below, above = v[:, :, :K], v[:, :, K:]
    return (below + (above - below) * fz).permute(0, 2, 3, 1)


#: Cosine between a sample's outward normal and the ray to the camera over which its weight in
#: D(S_vis → observed) ramps from 0 (grazing) to 1.
FACING_RAMP = 0.1
#: Samples' worth of D(X → S) in the mean D(S_vis → observed) (a prior for when few samples are visible).
M2T_PRIOR = 2.0


def _objective(R: torch.Tensor, s: torch.Tensor, c: torch.Tensor, data: _Data, n: int,
               self_visible: torch.Tensor, exact: bool = False, tracker: "_SilhouetteTracker | None" = None
               ) -> torch.Tensor:
    """Objective (G, K) of K poses per group — rotation R (G, K, 3, 3) internal → optical, scale s (G, K),
    centre c (G, K, 3) of the proposal's sample mean — on the first ``n`` points of every set.
    ``self_visible`` (G, K, ≥ n) bool: which mesh samples the mesh itself does not hide from the
    camera (:meth:`~dpa_ros.geometry.layout.data._Data.self_visible`). ``exact``: exact closest surface
    points instead of the field's (no gradient; for scoring). ``tracker``: follows the mask → silhouette nearest
    neighbours from step to step (Adam steps); None searches them all (:func:`_nearest_projected`)."""
    P, Nrm = data.P[:, :n], data.N[:, :n]
    Xw = data.Xw[:, :n]
    sc = s[..., None, None]
    # Target → surface: target points into the object frame, closest-point field lookup.
    x_obj, cp = _closest_on_surface(R, s, c, data, n, exact)
    d_t2m = torch.sqrt(((x_obj - cp) ** 2).sum(-1) + 1e-12) * s[..., None]
    t2m = (d_t2m * Xw[:, None]).sum(-1) / Xw.sum(-1).clamp_min(1.0)[:, None]

    # Surface samples into the camera.
    pts = sc * torch.einsum("gkij,gnj->gkni", R, P) + c[:, :, None]
    z = pts[..., 2]
    zc = z.clamp_min(1e-3)
    xn, yn = pts[..., 0] / zc, pts[..., 1] / zc
    ray = torch.sqrt(1.0 + xn * xn + yn * yn)                # |pts| / z
    u = xn * data.fx + data.cx
    v = yn * data.fy + data.cy
    uc = u.clamp(-1.0, data.W)
    vc = v.clamp(-1.0, data.H)
    looked = _lookup2d(data.value_maps, uc, vc, data.W, data.H)         # (G, 2, K, n), bilinear
    with torch.no_grad():
        weights = _lookup2d(data.weight_maps, uc, vc, data.W, data.H)  # (G, 4, K, n)
        # Every weight below is continuous in the pose (hard gates make a mean over a few samples
        # jump as one crosses a mask or occlusion edge, which misleads the gradient steps): inside
        # the image, falling to 0 over the pixel beyond its outermost centres; hidden, ramping up
        # as the observed surface (bilinear over valid depth) lies 1 to 2 × occlusion_margin in
        # front of the sample; the own surface (:func:`~dpa_ros.geometry.layout.problem.own_surface`) read
        # bilinearly; facing,
        # ramping up over the last ~6° before grazing.
        ahead = z > 1e-3
        inside = ((u + 1.0).clamp(0, 1) * (data.W - u).clamp(0, 1) * (v + 1.0).clamp(0, 1)
                  * (data.H - v).clamp(0, 1) * ahead)
        seen = weights[:, 3]
        z_scene = seen / weights[:, 2].clamp_min(1e-6)
        hidden = seen * ((z - z_scene) * (1.0 / max(data.margin, 1e-6)) - 1.0).clamp(0, 1)
        shown = inside * (1.0 - hidden)                                     # not hidden by something in front
        cos = -(torch.einsum("gkij,gnj->gkni", R, Nrm) * pts).sum(-1) / (zc * ray)
        facing = (cos * (1.0 / FACING_RAMP)).clamp(0, 1)
        w3 = facing * self_visible[..., :n] * shown * seen * weights[:, 1]
        w2 = shown
    # Visible samples → observed surface along their rays (inverse depth, bilinear).
    z_obs = 1.0 / looked[:, 0].clamp_min(1e-6)
    d_m2t = (z - z_obs).abs() * ray
    # A mean over few visible samples is shrunk toward D(X → S) (a prior worth M2T_PRIOR samples),
    # so that it neither jumps nor vanishes as the last samples leave the mask.
    m2t = ((d_m2t * w3).sum(-1) + M2T_PRIOR * t2m) / (w3.sum(-1) + M2T_PRIOR)
    loss = 0.5 * (t2m + m2t)
    if data.lambda_2d == 0:
        return loss
    # Projected samples → mask (distance transform, bilinear).
    d_m2k = looked[:, 1] / data.f
    m2k = (d_m2k * w2).sum(-1) / w2.sum(-1).clamp_min(1.0)
    # Mask samples → nearest projected sample (hinge at the samples' spacing).
    k, kp = _silhouette_sizes(data, n)
    Q = data.Q[:, :k]
    Qw = torch.isfinite(Q[..., 0]).float()
    Qz = torch.nan_to_num(Q)
    # Projected samples: twice as many as mask samples (the denser, the smaller the hinge below).
    proj = torch.stack([xn[..., :kp], yn[..., :kp]], -1)                       # (G, K, kp, 2)
    with torch.no_grad():
        far = torch.where(ahead[..., :kp, None], proj, torch.full_like(proj, 1e4))   # behind the camera: never nearest
        idx = _nearest_projected(Qz, far) if tracker is None else tracker.nearest(Qz, far)   # (G, K, kq)
    near = torch.gather(proj, 2, idx[..., None].expand(-1, -1, -1, 2))
    d_k2m = torch.sqrt(((Qz[:, None] - near) ** 2).sum(-1) + 1e-12)
    with torch.no_grad():
        # 1.5 × the mean spacing of the projected samples that land in the mask: a mask sample
        # nearer than that to one is inside the silhouette (counting only those that land in the
        # mask keeps the hinge right when the object is cut by the border or occluded).
        landed = (inside * weights[:, 0])[..., :kp]
        spacing = 1.5 * torch.sqrt(data.mask_area[:, None] / landed.sum(-1).clamp_min(1))
    d_k2m = (d_k2m - spacing[..., None]).clamp_min(0.0)
    k2m = (d_k2m * Qw[:, None]).sum(-1) / Qw.sum(-1).clamp_min(1.0)[:, None]
    return loss + data.lambda_2d * 0.5 * (m2k + k2m)


def _nearest_projected(Q: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Index (G, K, kq) of the nearest of the projected samples ``proj`` (G, K, kp, 2) for every mask
    sample ``Q`` (G, kq, 2), exhaustively: argmin over j of |p_j|² − 2 q·p_j (|q|² is the same for
    every j), one batched matrix product of (q, 1) with (−2 p, |p|²) (adding |p|² as a broadcast
    term instead would copy it to the full (kq, kp) size first). The products are formed for at most
    ``NN_BLOCK_ELEMENTS`` pairs at a time (the scan scores hundreds of hypotheses per group at once)."""
    G, K = proj.shape[:2]
    far = proj.flatten(0, 1)
    p_aug = torch.cat([-2.0 * far, (far * far).sum(-1, keepdim=True)], -1)                    # (GK, kp, 3)
    q_aug = torch.cat([Q, torch.ones_like(Q[..., :1])], -1)                                   # (G, kq, 3)
    q_aug = q_aug[:, None].expand(-1, K, -1, -1).flatten(0, 1)                                # (GK, kq, 3)
    step = max(1, NN_BLOCK_ELEMENTS // (Q.shape[1] * proj.shape[2]))
    idx = [torch.bmm(q_aug[b: b + step], p_aug[b: b + step].transpose(1, 2)).min(-1).indices
           for b in range(0, G * K, step)]
    return torch.cat(idx).view(G, K, -1)


#: Most (mask sample, projected sample) pairs whose distances :func:`_nearest_projected` holds at once.
NN_BLOCK_ELEMENTS = 1 << 24


#: Mesh-sample neighbours (on the surface, in 3D) the silhouette tracker looks at per step.
SILHOUETTE_NEIGHBOURS = 8


class _SilhouetteTracker:
    """The nearest projected mesh sample of every mask sample, followed across Adam steps.

    The exhaustive search (:func:`_nearest_projected`) costs kq × kp per chain and step. Poses move
    little per step, so the nearest sample of a mask sample is almost always its previous nearest
    sample or one of that sample's neighbours on the mesh surface. Every ``refresh`` steps (and at
    the first) the search is exhaustive; in between each mask sample's previous nearest sample and
    its ``SILHOUETTE_NEIGHBOURS`` nearest surface neighbours (a fixed graph of the proposal's first
    kp samples) are the candidates: kq × 9 per chain and step. A walk can stop at a sample that is
    nearer than all of its neighbours but not the nearest of all (two parts of a silhouette); the
    next exhaustive search corrects it.
    """

    def __init__(self, data: _Data, n: int, refresh: int):
        _, kp = _silhouette_sizes(data, n)
        self.graph = data.sample_graph(kp, SILHOUETTE_NEIGHBOURS)        # (G, kp, C) sample indices
        self.refresh = refresh
        self.step = 0
        self.idx: torch.Tensor | None = None

    def nearest(self, Q: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
        """Index (G, K, kq) of the (tracked) nearest of ``proj`` (G, K, kp, 2) for each of ``Q`` (G, kq, 2)."""
        if self.idx is None or self.step % self.refresh == 0:
            self.idx = _nearest_projected(Q, proj)
        else:
            G, K, kq = self.idx.shape
            C = self.graph.shape[-1]
            neighbours = torch.gather(self.graph[:, None].expand(-1, K, -1, -1), 2,
                                      self.idx[..., None].expand(-1, -1, -1, C))          # (G, K, kq, C)
            cand = torch.cat([self.idx[..., None], neighbours], -1)                       # (G, K, kq, C + 1)
            pts = torch.gather(proj, 2, cand.flatten(2)[..., None].expand(-1, -1, -1, 2)).view(G, K, kq, C + 1, 2)
            d2 = ((pts - Q[:, None, :, None]) ** 2).sum(-1)
            self.idx = torch.gather(cand, -1, d2.argmin(-1, keepdim=True))[..., 0]
        self.step += 1
        return self.idx


def _silhouette_sizes(data: _Data, n: int) -> tuple[int, int]:
    """(mask samples, projected mesh samples) of the mask → silhouette term on ``n`` points a side."""
    k = min(data.silhouette_points, max(10, n // 2))
    return k, min(n, 2 * k)

