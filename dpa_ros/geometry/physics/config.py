"""Settings of the physical-consistency stage (:class:`PhysicsConfig`) and their error."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpa_ros.core.errors import ConfigError


class PhysicsConfigError(ConfigError):
    """A :class:`PhysicsConfig` value out of range (a :class:`~dpa_ros.core.errors.ConfigError`)."""


@dataclass(frozen=True)
class PhysicsConfig:
    """Settings of the physical-consistency stage.

    Attributes:
        enabled: run the stage at all (off: :func:`settle_objects` returns every pose unchanged,
            support ``""``, penetrations NaN).
        max_penetration_m: the deepest two bodies may overlap afterwards (m); pairs deeper than
            ``separation_tolerance_m`` are pushed apart, and this is the bound the tests hold.
        contact_gap_m: a resting object sits this far (m) above its support, and pushed-apart pairs
            this far from each other (≥ 0).
        max_shift_m: the most (m) the stage moves an object vertically, and separately horizontally:
            the layout's error bound. A support that would lift the object more than this is not
            its support (it is something the object stands beside or under); an object that would
            fall further than this is left where it is, support ``"none"``.
        max_stretch: the most an object's height along gravity may change (fraction of it) when it is
            stretched instead of moved (module docstring); 0 turns stretching off.
        min_stretch_m: a vertical correction smaller than this (m) is a translation even where the
            observed points fit a stretch better: below a depth camera's noise the observation cannot
            tell the two apart, and the mesh stays as generated.
        separation_tolerance_m: pairs penetrating deeper than this (m) are pushed apart.
        samples: surface samples per object (with its vertices) for the penetration tests.
        columns: vertical rays per side of the grid that finds the top of a lower object under an
            upper one, and horizontal rays per side of the grid that measures how far to push a pair.
        directions: horizontal directions tried for pushing a pair apart (evenly spread over 360°).
        rounds: settle-and-separate rounds at most.
        occupancy_rays: rays per inside test (odd; the majority decides).
        seed: seed of the surface sampling.
    """

    enabled: bool = True
    max_penetration_m: float = 0.005
    contact_gap_m: float = 0.001
    max_shift_m: float = 0.15
    max_stretch: float = 0.5
    min_stretch_m: float = 0.01
    separation_tolerance_m: float = 0.001
    samples: int = 2000
    columns: int = 24
    directions: int = 16
    rounds: int = 8
    occupancy_rays: int = 3
    seed: int = 0

    def __post_init__(self):
        for name in ("max_penetration_m", "max_shift_m", "separation_tolerance_m", "min_stretch_m"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise PhysicsConfigError(f"PhysicsConfig.{name} must be a positive number of metres, got {value!r}")
        if not (np.isfinite(self.contact_gap_m) and 0 <= self.contact_gap_m < self.max_shift_m):
            raise PhysicsConfigError(f"PhysicsConfig.contact_gap_m must be in [0, max_shift_m), got "
                                     f"{self.contact_gap_m!r}")
        if not (np.isfinite(self.max_stretch) and 0 <= self.max_stretch < 1):
            raise PhysicsConfigError(f"PhysicsConfig.max_stretch must be in [0, 1), got {self.max_stretch!r}")
        if self.separation_tolerance_m > self.max_penetration_m:
            raise PhysicsConfigError("PhysicsConfig.separation_tolerance_m must not exceed max_penetration_m, got "
                                     f"{self.separation_tolerance_m!r} > {self.max_penetration_m!r}")
        for name, least in (("samples", 10), ("columns", 2), ("directions", 4), ("rounds", 1),
                            ("occupancy_rays", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < least:
                raise PhysicsConfigError(f"PhysicsConfig.{name} must be an integer ≥ {least}, got {value!r}")
        if self.occupancy_rays % 2 == 0:
            raise PhysicsConfigError(f"PhysicsConfig.occupancy_rays must be odd, got {self.occupancy_rays}")
