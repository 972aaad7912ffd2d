"""Marching-cubes lookup tables in the layout Shap-E's mesh decoder expects.

diffusers' ``MeshDecoder`` keeps its lookup table as two buffers, ``cases`` (256×5×3 edge
indices) and ``masks`` (256×5 bool), that arrive with the checkpoint; a renderer built from a
config (the ``smoke`` profile) has them all zero and decodes every latent to an empty mesh.
This module computes equivalent tables so such a renderer produces real isosurfaces.

Conventions (read from ``diffusers.pipelines.shap_e.renderer``): a cube's corner (x, y, z) ∈
{0, 1}³ is bit ``x + 2y + 4z`` of the case index, set when the field is > 0 (inside). Its 12
edges are numbered 0–3 along x at (y, z) = (0,0), (1,0), (0,1), (1,1); 4–7 along y at
(x, z) = (0,0), (1,0), (0,1), (1,1); 8–11 along z at (x, y) = (0,0), (1,0), (0,1), (1,1).

Each case is triangulated by walking the cut edges around the cube's faces. An ambiguous face
(two diagonal corners inside) is resolved by separating the inside corners; neighbouring cubes
share the face and resolve it identically, so the surface is closed. Triangles are wound
counter-clockwise seen from outside (normals point from inside to outside).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

MAX_TRIANGLES = 5


def _edges() -> list[tuple[int, int]]:
    """The 12 edges as pairs of corner indices (corner index = x + 2y + 4z)."""
    out = []
    for y, z in ((0, 0), (1, 0), (0, 1), (1, 1)):
        out.append((0 + 2 * y + 4 * z, 1 + 2 * y + 4 * z))
    for x, z in ((0, 0), (1, 0), (0, 1), (1, 1)):
        out.append((x + 0 + 4 * z, x + 2 + 4 * z))
    for x, y in ((0, 0), (1, 0), (0, 1), (1, 1)):
        out.append((x + 2 * y + 0, x + 2 * y + 4))
    return out


EDGES = _edges()


def _corner_xyz(c: int) -> np.ndarray:
    return np.array([c & 1, (c >> 1) & 1, (c >> 2) & 1], dtype=np.float64)


def _faces() -> list[list[int]]:
    """Each cube face as its 4 corners in cyclic order."""
    faces = []
    for axis in range(3):
        a, b = [ax for ax in range(3) if ax != axis]
        for side in (0, 1):
            cyc = []
            for ua, ub in ((0, 0), (1, 0), (1, 1), (0, 1)):
                xyz = [0, 0, 0]
                xyz[axis], xyz[a], xyz[b] = side, ua, ub
                cyc.append(xyz[0] + 2 * xyz[1] + 4 * xyz[2])
            faces.append(cyc)
    return faces


def _edge_index(c0: int, c1: int) -> int:
    key = (min(c0, c1), max(c0, c1))
    return EDGES.index(key)


def _triangulate(case: int) -> list[tuple[int, int, int]]:
    inside = [(case >> c) & 1 for c in range(8)]
    neighbours: dict[int, list[int]] = {}
    for cyc in _faces():
        sides = [(cyc[i], cyc[(i + 1) % 4]) for i in range(4)]
        cut = [i for i, (p, q) in enumerate(sides) if inside[p] != inside[q]]
        if not cut:
            continue
        if len(cut) == 2:
            pairs = [(cut[0], cut[1])]
        else:  # ambiguous face: pair the two sides around each inside corner
            pairs = []
            for i in range(4):
                if inside[cyc[i]]:
                    pairs.append(((i - 1) % 4, i))
        for s, t in pairs:
            e, f = _edge_index(*sides[s]), _edge_index(*sides[t])
            neighbours.setdefault(e, []).append(f)
            neighbours.setdefault(f, []).append(e)
    triangles: list[tuple[int, int, int]] = []
    seen: set[int] = set()
    for start in sorted(neighbours):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in neighbours[cur] if n != prev]
            nxt = nxt[0] if nxt else neighbours[cur][0]
            if nxt == start:
                break
            loop.append(nxt)
            seen.add(nxt)
            prev, cur = cur, nxt
        pts = np.array([(_corner_xyz(EDGES[e][0]) + _corner_xyz(EDGES[e][1])) / 2 for e in loop])
        # outward = from each edge's inside corner towards the edge midpoint
        outward = np.zeros(3)
        for e, p in zip(loop, pts):
            c_in = EDGES[e][0] if inside[EDGES[e][0]] else EDGES[e][1]
            outward += p - _corner_xyz(c_in)
        normal = np.zeros(3)  # Newell's method
        for i in range(len(pts)):
            normal += np.cross(pts[i], pts[(i + 1) % len(pts)])
        if normal @ outward < 0:
            loop = loop[::-1]
        for i in range(1, len(loop) - 1):
            triangles.append((loop[0], loop[i], loop[i + 1]))
    return triangles


@lru_cache(maxsize=1)
def tables() -> tuple[np.ndarray, np.ndarray]:
    """(cases (256, 5, 3) int64 edge indices, masks (256, 5) bool) for ``MeshDecoder``."""
    cases = np.zeros((256, MAX_TRIANGLES, 3), dtype=np.int64)
    masks = np.zeros((256, MAX_TRIANGLES), dtype=bool)
    for case in range(256):
        tris = _triangulate(case)
        if len(tris) > MAX_TRIANGLES:
            raise AssertionError(f"case {case} needs {len(tris)} triangles")
        for i, tri in enumerate(tris):
            cases[case, i] = tri
            masks[case, i] = True
    return cases, masks


def fill_mesh_decoder(mesh_decoder: torch.nn.Module) -> None:
    """Write the tables into a diffusers ``MeshDecoder``'s ``cases``/``masks`` buffers in place."""
    cases, masks = tables()
    with torch.no_grad():
        mesh_decoder.cases.copy_(torch.from_numpy(cases))
        mesh_decoder.masks.copy_(torch.from_numpy(masks))
