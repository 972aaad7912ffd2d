"""Pushing interpenetrating bodies apart horizontally, each with what stands on it."""
from __future__ import annotations

import numpy as np

from dpa_ros.geometry.physics.bodies import _FAR, _Body, _cast, _pair_depth, _room
from dpa_ros.geometry.physics.config import PhysicsConfig


def _push(a: _Body, b: _Body, config: PhysicsConfig) -> tuple[float, np.ndarray]:
    """The smallest horizontal move s (m) of ``a`` along a unit direction d (gravity frame) that
    leaves it ahead of ``b`` on every sampled line along d, over ``config.directions`` directions."""
    angles = 2 * np.pi * np.arange(config.directions) / config.directions
    best = (np.inf, np.array([1.0, 0.0, 0.0]))
    k = config.columns
    u = (np.arange(k) + 0.5) / k
    lo_z, hi_z = max(a.lo[2], b.lo[2]), min(a.hi[2], b.hi[2])
    if hi_z <= lo_z:
        return 0.0, best[1]
    va, vb = a.vertices + a.position, b.vertices + b.position
    for angle in angles:
        d = np.array([np.cos(angle), np.sin(angle), 0.0])
        side = np.array([-d[1], d[0], 0.0])
        lo_s = max((va @ side).min(), (vb @ side).min())
        hi_s = min((va @ side).max(), (vb @ side).max())
        if hi_s <= lo_s:
            return 0.0, d
        ss, zz = np.meshgrid(lo_s + u * (hi_s - lo_s), lo_z + u * (hi_z - lo_z))
        base = ss.reshape(-1, 1) * side + zz.reshape(-1, 1) * np.array([0.0, 0.0, 1.0])
        back_start = min((va @ d).min(), (vb @ d).min()) - _FAR
        front_start = max((va @ d).max(), (vb @ d).max()) + _FAR
        t_a = _cast(a.scene, base + back_start * d - a.position, d)
        t_b = _cast(b.scene, base + front_start * d - b.position, -d)
        both = np.isfinite(t_a) & np.isfinite(t_b)
        if not both.any():
            continue
        s = max(0.0, float(np.max((front_start - t_b[both]) - (back_start + t_a[both]))))
        if s < best[0]:
            best = (s, d)
    return (0.0 if not np.isfinite(best[0]) else best[0] + config.contact_gap_m), best[1]


def _riders(bodies: list[_Body], base: int) -> list[int]:
    """``base`` and every body standing on it, directly or through others."""
    group = [base]
    for idx in group:
        group.extend(i for i, b in enumerate(bodies) if b.below == idx and i not in group)
    return group


def _separate(bodies: list[_Body], config: PhysicsConfig) -> bool:
    """Push apart every pair penetrating deeper than the tolerance; True when any moved."""
    pairs = []
    for i in range(len(bodies)):
        for j in range(i + 1, len(bodies)):
            if bodies[i].below == j or bodies[j].below == i:
                continue  # a stacked pair's vertical overlap is the support step's business
            depth = _pair_depth(bodies[i], bodies[j], config)
            if depth > config.separation_tolerance_m:
                pairs.append((depth, i, j))
    moved = False
    for _, i, j in sorted(pairs, reverse=True):
        a, b = bodies[i], bodies[j]
        s, d = _push(a, b, config)
        if s <= 0:
            continue
        total = a.weight + b.weight
        share_a = 0.5 if total == 0 else b.weight / total
        room_a, room_b = _room(a, config), _room(b, config)
        move_a = min(share_a * s, room_a)
        move_b = min(s - move_a, room_b)
        move_a = min(s - move_b, room_a)
        for idx, step in ((i, move_a * d), (j, -move_b * d)):
            for r in _riders(bodies, idx):
                bodies[r].position += step
        moved = moved or move_a + move_b > 0
    return moved
