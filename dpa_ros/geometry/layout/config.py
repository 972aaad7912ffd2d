"""Layout solver settings (:class:`LayoutConfig`) and their check against the problems (:func:`checked_config`)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from dpa_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from dpa_ros.geometry.layout.problem import LayoutProblem


@dataclass(frozen=True)
class LayoutConfig:
    """Layout solver settings. Defaults are sized for a CPU; :meth:`paper` gives the paper's sizes.

    Frozen and checked once, on construction (:meth:`validate`; ``dataclasses.replace`` constructs
    anew): a LayoutConfig that exists is valid, so its users do not check it again. A bad value is a
    :class:`~dpa_ros.core.errors.ConfigError` naming the setting.

    Attributes:
        lambda_2d: weight λ of the 2D terms (normalised image units, see module docstring).
        restarts: chains Adam optimises per (instance, proposal), the best of the scan (paper: 10).
        iterations: Adam steps of every surviving chain, over all stages (paper: ~1000).
        points: mesh surface samples per proposal and most target points per instance at the
            final stage (paper: 5000).
        lr: Adam learning rate of the dimensionless parameters; cosine-decayed to lr/10.
        seed: seeds point sampling and restart rotations; same seed, same result on the CPU with a
            fixed thread count.
        device: "cpu", "cuda" or "auto" (CUDA when available).
        dof: "auto" (5 when gravity is known, else 7), "7" (full rotation) or "5" (yaw about
            gravity; needs gravity).
        occlusion_margin: metres an observed surface must lie in front of a mesh sample to hide it.
        keep_restarts: restarts per (instance, proposal) kept after stage 1.
        coarse_points: points per side in stage 1 (at most ``points``).
        silhouette_points: most mask samples of the mask → silhouette search (at most half the
            stage's points; it searches among twice as many projected mesh samples).
        field_resolution: nodes per axis of each proposal's closest-point field.
        scan_rotations: rotations the initial scan tries per (instance, proposal); at least ``restarts``.
        scan_scales: scales the scan tries, relative to the size the mask suggests.
        scan_icp_steps: point-to-plane ICP steps (translation) of every scan hypothesis.
        scan_shift: every scan hypothesis of scale ratio q is tried a second time, shifted
            ``scan_shift`` × q initial radii toward where the mask is cut by the image border or
            hidden by something in front (:func:`~dpa_ros.geometry.layout.problem.open_direction`); 0 disables
            (half the hypotheses).
        threads: torch CPU threads while the solver runs (restored afterwards); None keeps torch's
            setting (by default one per physical core). 1 leaves the other cores to other work.
    """

    lambda_2d: float = 4.0
    restarts: int = 10
    iterations: int = 300
    points: int = 1500
    lr: float = 0.03
    seed: int = 0
    device: str = "auto"
    dof: str = "auto"
    occlusion_margin: float = 0.05
    keep_restarts: int = 3
    coarse_points: int = 200
    silhouette_points: int = 200
    field_resolution: int = 48
    scan_rotations: int = 36
    scan_scales: tuple[float, ...] = (0.8, 1.0, 1.25, 1.55, 1.95)
    scan_icp_steps: int = 3
    scan_shift: float = 1.0
    threads: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def paper(cls, **overrides) -> "LayoutConfig":
        """The paper's sizes: 10 restarts, 1000 iterations, 5000 points per side (schedule: :meth:`schedule`),
        with 400 silhouette samples a side and 64³ closest-point fields."""
        return replace(cls(restarts=10, iterations=1000, points=5000, silhouette_points=400, field_resolution=64),
                       **overrides)

    def validate(self) -> "LayoutConfig":
        """``self``, or :class:`~dpa_ros.core.errors.ConfigError` naming the setting that is out of range."""
        for name, least in (("restarts", 1), ("iterations", 1), ("points", 10), ("keep_restarts", 1),
                            ("coarse_points", 10), ("silhouette_points", 10)):
            if getattr(self, name) < least:
                raise ConfigError(f"layout config needs {name} >= {least}, got {getattr(self, name)!r}")
        if self.dof not in ("auto", "5", "7"):
            raise ConfigError(f"layout dof must be 'auto', '5' or '7', got {self.dof!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"layout device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
        for name in ("lambda_2d", "occlusion_margin"):
            if getattr(self, name) < 0:
                raise ConfigError(f"layout config needs {name} >= 0, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ConfigError(f"layout config needs lr > 0, got {self.lr!r}")
        if self.scan_rotations < self.restarts:
            raise ConfigError(f"layout config needs scan_rotations >= restarts ({self.restarts}), "
                              f"got {self.scan_rotations!r}")
        if not self.scan_scales or min(self.scan_scales) <= 0:
            raise ConfigError(f"layout config needs positive scan_scales, got {self.scan_scales!r}")
        for name in ("scan_icp_steps", "scan_shift"):
            if getattr(self, name) < 0:
                raise ConfigError(f"layout config needs {name} >= 0, got {getattr(self, name)!r}")
        if self.field_resolution < 8:
            raise ConfigError(f"layout field_resolution must be >= 8, got {self.field_resolution}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"layout threads must be >= 1 or None, got {self.threads}")
        return self

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"layout device {self.device!r} requested but CUDA is not available")
        return torch.device(self.device)

    def schedule(self) -> list[tuple[int, int, int]]:
        """The coarse-to-fine stages as (restarts per proposal, iterations, points per side).

        1. every restart, 30 % of ``iterations``, ``min(coarse_points, points)`` points;
        2. the best ``keep_restarts`` restarts per proposal (scored exactly on all ``points``), 60 % of
           the iterations,
           ``max(coarse_points, points // 8)`` points (at most ``points``);
        3. the best restart per proposal (scored likewise), the remaining 10 %, all ``points``.

        Each stage starts from where the previous one left its chains (parameters and Adam
        moments); every surviving chain runs ``iterations`` steps in total. Stages with no
        iterations (tiny ``iterations``) are dropped.
        """
        T, n = self.iterations, self.points
        coarse = min(self.coarse_points, n)
        t1 = max(1, round(0.30 * T))
        t3 = max(1, round(0.10 * T)) if T - t1 >= 2 else 0
        stages = [(self.restarts, t1, coarse),
                  (min(self.keep_restarts, self.restarts), T - t1 - t3, min(n, max(coarse, n // 8))),
                  (1, t3, n)]
        return [s for s in stages if s[1] > 0]


def checked_config(problems: list[LayoutProblem], gravity, config: LayoutConfig | None
                   ) -> tuple[LayoutConfig, int, torch.device]:
    """The config (default :class:`LayoutConfig`), the DoF it gives (5 with gravity under dof "auto",
    else 7) and the torch device; raises ValueError for no problems and
    :class:`~dpa_ros.core.errors.ConfigError` for dof "5" without gravity.
    Shared with the legacy solver, so both refuse the same inputs."""
    cfg = config or LayoutConfig()
    if not problems:
        raise ValueError("layout needs at least one instance")
    if cfg.dof == "5" and gravity is None:
        raise ConfigError("layout dof '5' needs the gravity direction (fit a floor plane or pass gravity)")
    dof = 5 if (cfg.dof == "5" or (cfg.dof == "auto" and gravity is not None)) else 7
    return cfg, dof, cfg.torch_device()
