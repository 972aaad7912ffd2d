"""Does the exported scene stand still in a physics engine? :func:`~dpa_ros.export.sim_check.check_scene`.

``dpa-sim-check`` is :mod:`dpa_ros.cli.sim_check`.

The scene's MJCF model (``SCENE_DIR/mujoco/scene.xml``, :mod:`dpa_ros.export.mjcf`; written
first from ``scene.json`` when it is missing, or always when asked) is loaded in MuJoCo and
simulated for ``duration_s`` seconds from rest. Per object body ``dpa_object_<id>``:

* ``penetration_t0_m``: the deepest contact at t = 0 (``mj_forward``'s contacts with
  ``dist < 0``: how far the object is sunk into the floor, a support or another object), metres;
* ``drift_m``: how far its centre of mass moved, metres (world frame);
* ``turn_deg``: the angle of its rotation from the start, degrees;
* ``stable``: ``drift_m <= STABLE_DRIFT_M`` and ``turn_deg <= STABLE_TURN_DEG``.

``stable_rate`` is the share of stable objects (1.0 for a scene without objects).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from dpa_ros.core.scene import SCENE_JSON, Scene, SceneFormatError
from dpa_ros.export import MJCF_DIR, ExportError, ExportOptions, export_scene
from dpa_ros.export.mjcf import MODEL_FILE
from dpa_ros.naming import object_name
from dpa_ros.overlay import draw_status

STABLE_DRIFT_M = 0.02
STABLE_TURN_DEG = 5.0
STABILITY_PNG = "stability.png"
REPORT_JSON = "sim_check.json"
STABLE_RGB = (40, 200, 60)
UNSTABLE_RGB = (230, 30, 30)
OBJECT_PREFIX = object_name(0).removesuffix("0")  # "dpa_object_": the bodies reported


class SimCheckError(ValueError):
    """A scene directory that cannot be checked (no scene, unreadable model ...)."""


@dataclass
class ObjectResult:
    """One object's outcome (see the module docstring for the fields' meaning and units)."""

    id: int
    name: str
    label: str
    penetration_t0_m: float
    drift_m: float
    turn_deg: float
    stable: bool


@dataclass
class SimReport:
    """The outcome of :func:`check_scene`.

    Attributes:
        model: the MJCF file that was simulated.
        duration_s: simulated time, seconds.
        objects: per object, in the model's body order.
        stable_rate: share of stable objects in [0, 1].
        written_mjcf: whether the model was (re)written from scene.json for this check.
    """

    model: str
    duration_s: float
    objects: list[ObjectResult] = field(default_factory=list)
    stable_rate: float = 1.0
    written_mjcf: bool = False

    def to_dict(self) -> dict:
        """JSON-able content; a drift or turn that is not finite (the simulation blew up) is None."""
        objects = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(o).items()}
                   for o in self.objects]
        return {"model": self.model, "duration_s": self.duration_s, "stable_rate": self.stable_rate,
                "written_mjcf": self.written_mjcf, "objects": objects}

    def table(self) -> str:
        """Human-readable lines: one per object, then the stable rate."""
        lines = [f"{'object':<16} {'label':<14} {'penetration t0 [cm]':>19} {'drift [cm]':>10} {'turn [deg]':>10}"
                 f" {'stable':>6}"]
        for o in self.objects:
            lines.append(f"{o.name:<16} {o.label[:14]:<14} {100 * o.penetration_t0_m:>19.2f} {100 * o.drift_m:>10.2f}"
                         f" {o.turn_deg:>10.2f} {'yes' if o.stable else 'no':>6}")
        n_stable = sum(o.stable for o in self.objects)
        lines.append(f"stable: {n_stable}/{len(self.objects)} = {100 * self.stable_rate:.1f} % after "
                     f"{self.duration_s:g} s (drift <= {100 * STABLE_DRIFT_M:g} cm, turn <= {STABLE_TURN_DEG:g} deg)")
        return "\n".join(lines)


def _labels(scene_dir: Path) -> dict[str, str]:
    """object name → label from scene.json (without loading the meshes); empty when absent."""
    path = scene_dir / SCENE_JSON
    if not path.is_file():
        return {}
    try:
        return {object_name(o["id"]): str(o.get("label", "")) for o in json.loads(path.read_text())["objects"]}
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SimCheckError(f"cannot read {path}: {exc}") from exc


def _turn_deg(R0: np.ndarray, R1: np.ndarray) -> float:
    cos = (np.trace(R0.T @ R1) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def simulate(model_path: Path, duration_s: float, labels: dict[str, str] | None = None) -> SimReport:
    """Simulate the MJCF model at ``model_path`` from rest for ``duration_s`` s; bodies named
    ``dpa_object_<id>`` are reported (``labels`` maps their names to labels).

    Raises:
        SimCheckError: the model cannot be loaded, or ``duration_s`` is not positive.
    """
    import mujoco

    if not np.isfinite(duration_s) or duration_s <= 0:
        raise SimCheckError(f"duration must be positive seconds, got {duration_s}")
    try:
        model = mujoco.MjModel.from_xml_path(str(model_path))
    except (ValueError, OSError) as exc:
        raise SimCheckError(f"MuJoCo cannot load {model_path}: {str(exc).splitlines()[0]}") from exc
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    bodies = [b for b in range(model.nbody) if model.body(b).name.startswith(OBJECT_PREFIX)]
    depth = dict.fromkeys(bodies, 0.0)
    for contact in data.contact[:data.ncon]:
        for geom in (contact.geom1, contact.geom2):
            body = int(model.geom_bodyid[geom])
            if body in depth:
                depth[body] = max(depth[body], -float(contact.dist))
    start = {b: (data.xipos[b].copy(), data.xmat[b].reshape(3, 3).copy()) for b in bodies}
    mujoco.mj_step(model, data, nstep=max(1, int(round(duration_s / model.opt.timestep))))
    objects = []
    for b in bodies:
        (x0, R0), x1, R1 = start[b], data.xipos[b], data.xmat[b].reshape(3, 3)
        drift = float(np.linalg.norm(x1 - x0)) if np.all(np.isfinite(x1)) else float("inf")
        turn = _turn_deg(R0, R1) if np.all(np.isfinite(R1)) else 180.0
        name = model.body(b).name
        objects.append(ObjectResult(id=int(name.rsplit("_", 1)[1]) if name.rsplit("_", 1)[1].isdigit() else -1,
                                    name=name, label=(labels or {}).get(name, ""),
                                    penetration_t0_m=depth[b], drift_m=drift, turn_deg=turn,
                                    stable=bool(drift <= STABLE_DRIFT_M and turn <= STABLE_TURN_DEG)))
    rate = float(np.mean([o.stable for o in objects])) if objects else 1.0
    return SimReport(model=str(model_path), duration_s=float(duration_s), objects=objects, stable_rate=rate)


def check_scene(scene_dir: str | Path, duration_s: float = 2.0, write_mjcf: bool = False,
                options: ExportOptions | None = None) -> SimReport:
    """Simulate ``scene_dir``'s MuJoCo export (see the module docstring).

    Args:
        scene_dir: a directory with ``scene.json`` and/or ``mujoco/scene.xml``.
        duration_s: simulated seconds.
        write_mjcf: (re)write ``mujoco/`` from ``scene.json`` even when it exists (it is always
            written when missing).
        options: export options for that write (default :class:`ExportOptions`; ``overwrite``
            is forced on when rewriting).

    Raises:
        SimCheckError: no scene there, the export fails, or MuJoCo cannot load the model.
    """
    scene_dir = Path(scene_dir)
    model_path = scene_dir / MJCF_DIR / MODEL_FILE
    written = False
    if write_mjcf or not model_path.is_file():
        if not (scene_dir / SCENE_JSON).is_file():
            raise SimCheckError(f"{scene_dir} has neither {SCENE_JSON} nor {MJCF_DIR}/{MODEL_FILE}")
        try:
            export_scene(scene_dir, ["mjcf"], replace(options or ExportOptions(), overwrite=True))
        except (ExportError, SceneFormatError) as exc:
            raise SimCheckError(f"cannot write the MuJoCo model: {exc}") from exc
        written = True
    report = simulate(model_path, duration_s, _labels(scene_dir))
    report.written_mjcf = written
    return report


def stability_image(scene: Scene, report: SimReport, base: np.ndarray | None) -> np.ndarray:
    """``base`` (or a grey canvas of the camera's size) with each object's silhouette outlined
    green (stable) or red (unstable) and labelled ``<id> ok`` / ``<id> moved <drift> cm``."""
    cam = scene.camera
    if base is None:
        base = np.full((cam.height, cam.width, 3), 96, np.uint8)
    by_id = {o.id: o for o in report.objects}
    colours, texts = {}, {}
    for obj in scene.objects:
        result = by_id.get(obj.id)
        if result is None:
            continue
        colours[obj.id] = STABLE_RGB if result.stable else UNSTABLE_RGB
        texts[obj.id] = f"{obj.id} ok" if result.stable else \
            f"{obj.id} moved {100 * result.drift_m:.0f} cm {result.turn_deg:.0f} deg"
    return draw_status(base, scene, colours, texts)
