"""Typed profiles: one frozen dataclass per stage, built once from a profile's YAML and validated.

:func:`dpa_ros.priors.profiles.load_profile` merges the YAML files and overrides into a dict and
hands it to :meth:`Profile.from_dict`. Every key is checked here: an unknown key is a
:class:`ProfileError` (a :class:`~dpa_ros.priors.base.ReconstructionError` and a
:class:`~dpa_ros.core.errors.ConfigError`) naming the key, where it is, and the nearest
valid key (``segmenter.box_treshold: unknown key (did you mean 'box_threshold'?)``); a value of the
wrong type or out of range is one too. The defaults written in these classes are the only ones:
adapters, the pipeline, the CLI and the ROS node read them from here.

The layout stage's config is :class:`dpa_ros.geometry.layout.LayoutConfig`, the targets'
:class:`dpa_ros.geometry.targets.TargetConfig` and the physics stage's
:class:`dpa_ros.geometry.physics.PhysicsConfig`; their keys are taken from their dataclass fields,
so fields added there are accepted here without a change. Keys that left ``layout:``
(:data:`MOVED_LAYOUT_KEYS`) are still read there, with a FutureWarning naming their new place
(:func:`migrate_moved_keys`).
Importing this module does not import torch (the ROS node reads its defaults from here); building
a :class:`Profile` does, through ``LayoutConfig``.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dpa_ros.core.errors import ConfigError
from dpa_ros.priors.errors import ReconstructionError

if TYPE_CHECKING:  # imported when a profile is built: this module itself stays free of torch
    from dpa_ros.geometry.layout import LayoutConfig
    from dpa_ros.geometry.physics import PhysicsConfig
    from dpa_ros.geometry.targets import TargetConfig

#: where a model comes from: its checkpoint, a tiny config (smoke), or its real architecture with
#: random weights (:mod:`dpa_ros.priors.random_models`, for speed benchmarks)
SOURCES = ("weights", "tiny", "random")

#: depth model classes: DPTForDepthEstimation | DepthAnythingForDepthEstimation
DEPTH_KINDS = ("dpt", "depth_anything")
#: what a depth model predicts: relative depth | relative inverse depth | metres
DEPTH_OUTPUTS = ("depth", "disparity", "metric")


class ProfileError(ReconstructionError, ConfigError):
    """A profile (or one of its sections) with an unknown key or a bad value; names the key.

    Both a :class:`~dpa_ros.priors.errors.ReconstructionError` (the pipeline's one-line failure) and
    the :class:`~dpa_ros.core.errors.ConfigError` every configuration check raises."""


def unknown_key_message(path: str, key: str, valid: typing.Iterable[str]) -> str:
    """``'<path>.<key>: unknown key (did you mean '<nearest>'?; valid: ...)'``."""
    valid = sorted(valid)
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(valid)}"
    where = f"{path}.{key}" if path else key
    return f"{where}: unknown key ({hint})"


def _check_keys(cls: type, data: dict, path: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ProfileError(unknown_key_message(path, str(key), names))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the (simple) annotated type ``hint``; raises :class:`ProfileError` when it is not one."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ProfileError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ProfileError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ProfileError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        if len(args) <= 1 or (len(args) == 2 and args[1] is Ellipsis):  # tuple[X, ...]
            return tuple(_coerce(v, item, f"{where}[{i}]") if item is not Any else v for i, v in enumerate(value))
        if len(value) != len(args):
            raise ProfileError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    return value


class _Section:
    """Mixin of the stage configs: building from a dict, with every key and value checked."""

    #: nested sections: field name -> config class
    nested: ClassVar[dict[str, type]] = {}

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    @classmethod
    def from_dict(cls, data: dict | None, path: str = ""):
        """The config of this section from its profile dict; raises :class:`ProfileError` naming a bad key."""
        if data is None:
            data = {}
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ProfileError(f"{path or cls.__name__}: expected a mapping, got {data!r}")
        _check_keys(cls, data, path)
        hints = cls._type_hints()
        values = {}
        for key, value in data.items():
            where = f"{path}.{key}" if path else key
            if key in cls.nested:
                values[key] = None if value is None else cls.nested[key].from_dict(value, where)
            else:
                values[key] = _coerce(value, hints[key], where)
        obj = cls(**values)
        obj.validate(path or cls.__name__)
        return obj

    def validate(self, path: str) -> None:
        """Raise :class:`ProfileError` for a value out of range (the classes below add their checks)."""

    def replace(self, **changes):
        """A copy with ``changes`` applied and validated (``dataclasses.replace`` plus :meth:`validate`)."""
        obj = dataclasses.replace(self, **changes)
        obj.validate(type(self).__name__)
        return obj


def _in_unit(path: str, name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ProfileError(f"{path}.{name} must be in [0, 1], got {value}")


def _positive(path: str, **values: float) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ProfileError(f"{path}.{name} must be > 0, got {value}")


@dataclass(frozen=True)
class ModelRef(_Section):
    """Where a model comes from (every model section has these keys).

    Attributes:
        source: ``weights`` (a checkpoint from weights_dir or the Hugging Face cache), ``tiny`` (built
            from a tiny config, :mod:`dpa_ros.priors.tiny`) or ``random`` (the real architecture with
            random weights, :mod:`dpa_ros.priors.random_models`, for speed benchmarks).
        model_id: Hugging Face repository id of the weights.
        revision: a commit (40 hex digits), tag or branch of that repository; None is ``main``.
        filename: a single checkpoint file inside the repository (SAM, OpenCLIP); None: a snapshot.
        allow_patterns: file globs ``dpa-weights download`` fetches from a snapshot (only the files
            the loader reads); None fetches every file.
        weights_variant: the file variant loaded (``fp16`` reads ``*.fp16.safetensors``), or None.
        fp16: run in float16 on CUDA (always float32 on the CPU).
        seed: seed of a ``tiny`` / ``random`` build.
    """

    source: str = "weights"
    model_id: str | None = None
    revision: str | None = None
    filename: str | None = None
    allow_patterns: tuple[str, ...] | None = None
    weights_variant: str | None = None
    fp16: bool = True
    seed: int = 0

    def validate(self, path: str) -> None:
        if self.source not in SOURCES:
            raise ProfileError(f"{path}.source must be one of {', '.join(SOURCES)}, got '{self.source}'")
        if self.source == "weights" and not self.model_id:
            raise ProfileError(f"{path}.model_id is required with source: weights")


@dataclass(frozen=True)
class DetectorConfig(ModelRef):
    """Grounding DINO (transformers layout). ``variant``: ``base`` | ``tiny`` size for ``source: random``;
    ``image_size``: (shortest, longest) processor edge in pixels for ``source: tiny``."""

    variant: str = "base"
    image_size: tuple[int, int] = (96, 160)


@dataclass(frozen=True)
class SamConfig(ModelRef):
    """Segment Anything checkpoint. ``type``: vit_h | vit_l | vit_b; ``image_size``: input side (px), tiny only."""

    type: str = "vit_h"
    image_size: int = 128

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.type not in ("vit_h", "vit_l", "vit_b"):
            raise ProfileError(f"{path}.type must be vit_h, vit_l or vit_b, got '{self.type}'")


@dataclass(frozen=True)
class SegmenterConfig(_Section):
    """Stage 1, Grounded-SAM.

    Attributes:
        box_threshold: a query is a detection when its best token probability exceeds this.
        text_threshold: ... and its category's best token probability exceeds this.
        keep_threshold: σ, instances kept after segmentation have a confidence above this.
        nms_iou: non-maximum suppression across labels (box IoU).
        max_instances: highest-scoring instances kept (None: all).
        min_mask_pixels: instances whose SAM mask is smaller are dropped.
    """

    nested: ClassVar[dict[str, type]] = {"detector": DetectorConfig, "sam": SamConfig}

    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(source="tiny"))
    sam: SamConfig = field(default_factory=lambda: SamConfig(source="tiny"))
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    keep_threshold: float = 0.4
    nms_iou: float = 0.5
    max_instances: int | None = 20
    min_mask_pixels: int = 1

    def validate(self, path: str) -> None:
        for name in ("box_threshold", "text_threshold", "keep_threshold", "nms_iou"):
            _in_unit(path, name, getattr(self, name))
        if self.max_instances is not None and self.max_instances < 1:
            raise ProfileError(f"{path}.max_instances must be >= 1 or null, got {self.max_instances}")


@dataclass(frozen=True)
class EnhancerConfig(ModelRef):
    """Stage 2, Stable Diffusion img2img (SDEdit) on white-canvas crops.

    Attributes:
        canvas_size: side of the square canvas and of the SD input, pixels.
        fill: the crop's longest side as a fraction of the canvas.
        candidates: M images per instance (0 skips the stage: no model is loaded).
        strength: SDEdit noise level in [0, 1].
        steps: scheduled denoising steps (strength·steps are run).
        guidance: classifier-free guidance scale.
        scheduler: ``ddim``, or ``default`` to keep the checkpoint's own.
        prompt_template: the prompt, ``{category}`` filled in.
        batch_images: images per UNet batch (bounds GPU memory).
    """

    canvas_size: int = 512
    fill: float = 0.6
    candidates: int = 6
    strength: float = 0.5
    steps: int = 50
    guidance: float = 9.0
    scheduler: str = "ddim"
    prompt_template: str = "High quality, authentic style {category}"
    batch_images: int = 24

    def validate(self, path: str) -> None:
        super().validate(path)
        _in_unit(path, "strength", self.strength)
        _positive(path, canvas_size=self.canvas_size, fill=self.fill, steps=self.steps, batch_images=self.batch_images)
        if self.candidates < 0:
            raise ProfileError(f"{path}.candidates must be >= 0, got {self.candidates}")
        if self.scheduler not in ("ddim", "default"):
            raise ProfileError(f"{path}.scheduler must be ddim or default, got '{self.scheduler}'")
        if "{category}" not in self.prompt_template:
            raise ProfileError(f"{path}.prompt_template must contain {{category}}, got '{self.prompt_template}'")


@dataclass(frozen=True)
class ScorerConfig(ModelRef):
    """Stage 3, OpenCLIP similarity. ``arch``: open_clip architecture; ``top_k``: K images kept;
    ``keep_original``: the original crop competes; ``image_size``: tiny model input side (px)."""

    arch: str = "ViT-H-14"
    image_size: int = 32
    top_k: int = 3
    keep_original: bool = True

    def validate(self, path: str) -> None:
        super().validate(path)
        _positive(path, top_k=self.top_k, image_size=self.image_size)


@dataclass(frozen=True)
class GeneratorConfig(ModelRef):
    """Stage 4, Shap-E img2img. ``latents_per_image``: N; ``grid_size``: marching-cubes grid over
    [-1, 1]³; ``batch_images``: images per prior batch; ``image_size``: tiny model input side (px)."""

    image_size: int = 32
    latents_per_image: int = 2
    steps: int = 64
    guidance: float = 3.0
    grid_size: int = 128
    batch_images: int = 16

    def validate(self, path: str) -> None:
        super().validate(path)
        _positive(path, latents_per_image=self.latents_per_image, steps=self.steps, grid_size=self.grid_size,
                  batch_images=self.batch_images)


@dataclass(frozen=True)
class DepthModelConfig(ModelRef):
    """A monocular depth model. ``kind``: dpt | depth_anything; ``output``: depth | disparity | metric
    (what the model predicts); ``image_size``: tiny model input side (px)."""

    kind: str = "dpt"
    output: str = "disparity"
    image_size: int = 64

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.kind not in DEPTH_KINDS:
            raise ProfileError(f"{path}.kind must be one of {', '.join(DEPTH_KINDS)}, got '{self.kind}'")
        if self.output not in DEPTH_OUTPUTS:
            raise ProfileError(f"{path}.output must be one of {', '.join(DEPTH_OUTPUTS)}, got '{self.output}'")


@dataclass(frozen=True)
class DepthConfig(DepthModelConfig):
    """Stage 5, depth: the relative depth model (these keys) and how it is made metric.

    Attributes:
        metric_model: a second model (``output: metric``) used as the metric reference for frames
            without sensor depth, before the floor-height fallback; None: no such model.
        camera_height_m: camera height above the floor plane, metres, for the floor fallback (None: off).
        default_depth_m: last resort: the scene's median depth is set to this (logged as a guess).
        min_sensor_fraction: sensor depth is used when at least this fraction of pixels is valid.
    """

    nested: ClassVar[dict[str, type]] = {"metric_model": DepthModelConfig}

    metric_model: DepthModelConfig | None = None
    camera_height_m: float | None = 1.2
    default_depth_m: float = 2.5
    min_sensor_fraction: float = 0.05

    def validate(self, path: str) -> None:
        super().validate(path)
        _positive(path, camera_height_m=self.camera_height_m, default_depth_m=self.default_depth_m)
        _in_unit(path, "min_sensor_fraction", self.min_sensor_fraction)
        if self.metric_model is not None and self.metric_model.output != "metric":
            raise ProfileError(f"{path}.metric_model.output must be metric, got '{self.metric_model.output}'")


def _layout_class() -> type:
    from dpa_ros.geometry.layout import LayoutConfig

    return LayoutConfig


def _physics_class() -> type:
    from dpa_ros.geometry.physics import PhysicsConfig

    return PhysicsConfig


def _targets_class() -> type:
    from dpa_ros.geometry.targets import TargetConfig

    return TargetConfig


#: keys a ``layout:`` section held before they moved to the stage that uses them: old key -> new
#: ``section.key``, or None for a key no stage of a profile reads any more
MOVED_LAYOUT_KEYS: dict[str, str | None] = {"depth_smoothing": "targets.depth_smoothing", "block_elements": None}


def migrate_moved_keys(data: dict, where: str = "") -> dict:
    """``data`` (a profile, a ``--config`` file or overrides, as a mapping) with each key of
    :data:`MOVED_LAYOUT_KEYS` taken out of its ``layout:`` section: moved to its new section, or
    dropped when nothing reads it, with a FutureWarning naming the new key. :class:`ProfileError`
    when ``data`` sets a key in both places. ``where`` (a file) goes into the messages."""
    layout = data.get("layout")
    if not isinstance(layout, dict) or not any(k in layout for k in MOVED_LAYOUT_KEYS):
        return data
    data, layout = dict(data), dict(layout)
    at = f"{where}: " if where else ""
    for old, new in MOVED_LAYOUT_KEYS.items():
        if old not in layout:
            continue
        value = layout.pop(old)
        if new is None:
            warnings.warn(f"{at}layout.{old} is ignored and will be an unknown key: no stage of a profile reads it "
                          f"(it sizes the legacy solver's nearest-neighbour blocks: "
                          f"solve_layout_legacy(..., {old}=N)); remove it", FutureWarning, stacklevel=2)
            continue
        section, key = new.split(".")
        moved = data.get(section)
        moved = dict(moved) if isinstance(moved, dict) else {}
        if key in moved:
            raise ProfileError(f"{at}layout.{old} moved to {new}, and both are set: keep only {new}")
        warnings.warn(f"{at}layout.{old} is deprecated and will be an unknown key: it moved to {new} "
                      f"(read as {new}: {value!r})", FutureWarning, stacklevel=2)
        moved[key] = value
        data[section] = moved
    data["layout"] = layout
    return data


def _plain_from_dict(cls: type, data: dict | None, path: str):
    """An instance of the dataclass ``cls`` from a mapping; unknown keys and invalid values are
    :class:`ProfileError` naming the key."""
    if data is not None and not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping, got {data!r}")
    data = dict(data or {})
    _check_keys(cls, data, path)
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(v, hints.get(k, Any), f"{path}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: {exc}") from exc


def layout_from_dict(data: dict | None, path: str = "layout") -> LayoutConfig:
    """:class:`~dpa_ros.geometry.layout.config.LayoutConfig` from a ``layout:`` mapping; unknown keys and
    invalid values are :class:`ProfileError`."""
    return _plain_from_dict(_layout_class(), data, path)  # checked on construction


def targets_from_dict(data: dict | None, path: str = "targets") -> TargetConfig:
    """:class:`~dpa_ros.geometry.targets.TargetConfig` from a ``targets:`` mapping; unknown keys and
    invalid values are :class:`ProfileError`."""
    return _plain_from_dict(_targets_class(), data, path)


def physics_from_dict(data: dict | None, path: str = "physics") -> PhysicsConfig:
    """:class:`~dpa_ros.geometry.physics.PhysicsConfig` from a ``physics:`` mapping (``enabled: false``
    turns the stage off); unknown keys and invalid values are :class:`ProfileError`."""
    return _plain_from_dict(_physics_class(), data, path)


@dataclass(frozen=True)
class Profile(_Section):
    """A whole profile: the models and settings of every stage.

    A model section (or subsection) a profile leaves out is built from a tiny config, as in
    ``smoke``; a key left out takes the default written in its section's class.

    Attributes:
        name: the profile's name (``paper``, ``fast``, ``smoke`` or a custom one).
        description: one line for humans.
        device: torch device, ``auto`` picks CUDA when available.
        seed: seeds every stochastic stage.
        prompt: the detection prompt of categories, ``"chair. table."``.
        min_image_side: smaller images (pixels) are rejected.
        layout: the layout solver's settings (``layout:``).
        targets: how each instance's targets are built from the depth (``targets:``).
        physics: the physical-consistency stage after the layout (``physics:``; ``enabled: false``
            turns it off).
    """

    nested: ClassVar[dict[str, type]] = {"segmenter": SegmenterConfig, "enhancer": EnhancerConfig,
                                         "scorer": ScorerConfig, "generator": GeneratorConfig,
                                         "depth": DepthConfig}

    name: str = "custom"
    description: str = ""
    device: str = "auto"
    seed: int = 0
    prompt: str = ""
    min_image_side: int = 32
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    enhancer: EnhancerConfig = field(default_factory=lambda: EnhancerConfig(source="tiny"))
    scorer: ScorerConfig = field(default_factory=lambda: ScorerConfig(source="tiny"))
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(source="tiny"))
    depth: DepthConfig = field(default_factory=lambda: DepthConfig(source="tiny"))
    layout: LayoutConfig = field(default_factory=lambda: _layout_class()())
    targets: TargetConfig = field(default_factory=lambda: _targets_class()())
    physics: PhysicsConfig = field(default_factory=lambda: _physics_class()())

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls, localns={"LayoutConfig": _layout_class(), "TargetConfig": _targets_class(),
                                                   "PhysicsConfig": _physics_class()})

    @classmethod
    def from_dict(cls, data: dict | None, path: str = ""):
        data = dict(data or {})
        name = str(data.get("name", "custom"))
        try:
            data = migrate_moved_keys(data)
            layout = data.pop("layout", None)
            targets = data.pop("targets", None)
            physics = data.pop("physics", None)
            prof = super().from_dict(data, path)
            return dataclasses.replace(prof, layout=layout_from_dict(layout), targets=targets_from_dict(targets),
                                       physics=physics_from_dict(physics))
        except ProfileError as exc:
            raise ProfileError(f"profile '{name}': {exc}") from exc

    def validate(self, path: str) -> None:
        _positive(path, min_image_side=self.min_image_side)

    def model_sections(self) -> dict[str, ModelRef]:
        """Every model section by its dotted name (``segmenter.sam``, ``depth.metric_model`` ...)."""
        out: dict[str, ModelRef] = {"segmenter.detector": self.segmenter.detector, "segmenter.sam": self.segmenter.sam,
                                    "enhancer": self.enhancer, "scorer": self.scorer, "generator": self.generator,
                                    "depth": self.depth}
        if self.depth.metric_model is not None:
            out["depth.metric_model"] = self.depth.metric_model
        return out

    def to_dict(self) -> dict:
        """The profile as plain data (tuples as lists), e.g. for logging or a YAML dump."""
        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v
        return plain(dataclasses.asdict(self))
