"""The deep priors: one adapter per model family (docs/method.md, stages 1–5), profiles and weights.

- :mod:`~dpa_ros.priors.segmenter` — Grounding DINO + Segment Anything (stage 1)
- :mod:`~dpa_ros.priors.enhancer` — Stable Diffusion img2img on white-canvas crops (stage 2)
- :mod:`~dpa_ros.priors.scorer` — OpenCLIP image similarity, top K (stage 3)
- :mod:`~dpa_ros.priors.generator` — Shap-E image-to-3D meshes (stage 4)
- :mod:`~dpa_ros.priors.depth` — DPT / Depth Anything, and sensor depth (stage 5)
- :mod:`~dpa_ros.priors.tiny` — the ``smoke`` profile's tiny random models
- :mod:`~dpa_ros.priors.random_models` — real-size architectures with random weights (benchmarks)
- :mod:`~dpa_ros.priors.weights`, :mod:`~dpa_ros.cli.weights` — ``dpa-weights``
- :mod:`~dpa_ros.priors.profiles` — profile YAML loading

Adapters load lazily (:class:`~dpa_ros.priors.base.LazyModel`) and never download. Each model
section's ``source`` is ``weights`` (default), ``tiny`` or ``random``.
"""
