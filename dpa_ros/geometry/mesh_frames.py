"""The mesh input contract of the layout stage, and the one place that converts it.

**Contract.** Meshes handed to the layout solver (``dpa-reconstruct --instances``,
:func:`dpa_ros.assemble.assemble_scene`, :func:`dpa_ros.geometry.layout.solve_layout`) follow the
glTF convention unless told otherwise: right-handed, **+Y up**, the object's **front toward +Z**,
+X to the object's left-to-right as seen by a viewer facing that front (i.e. the viewer's right).
Origin and scale are free: the solver estimates position and size. Other conventions are named by
their up axis (``up``):

=======  ===============================================  ==========================================
``up``   rotation to glTF (applied to the vertices)       what becomes glTF's front (+Z)
=======  ===============================================  ==========================================
``+y``   identity (glTF, three.js, Unity after import)    +Z
``+z``   −90° about x: (x, y, z) → (x, z, −y)             −Y: Blender's front view, Shap-E's decoder.
                                                          ROS / Gazebo / Isaac models (front +X)
                                                          come out facing glTF +X (the viewer's
                                                          right); yaw is searched, so only up matters
                                                          for the fit
``-z``   +90° about x: (x, y, z) → (x, −z, y)             +Y
``-y``   180° about z: (x, y, z) → (−x, −y, z)            +Z
``+x``   +90° about z: (x, y, z) → (−y, x, z)             +Z
``-x``   −90° about z: (x, y, z) → (y, −x, z)             +Z
=======  ===============================================  ==========================================

**Internal frame** (an implementation detail of the solver, never seen by users): the optical
frame's axis convention applied to the object as a level camera sees it from its front — x right,
y down, z away from the camera, so the object's up is −y and its front faces −z. glTF → internal
is the proper rotation diag(1, −1, −1) (180° about x). :func:`rotation_input_to_internal` gives the
rotation from an input convention into it; both layout solvers apply it to each proposal's vertices
once and fold it into the returned pose, so ``T_camera_object`` always maps the mesh *as given* (its own
frame, its own units) into the camera optical frame.
"""
from __future__ import annotations

import numpy as np

#: Up axes a mesh convention can name (``up`` in instances.json, ``--mesh-up``).
UP_AXES = ("+y", "+z", "-y", "-z", "+x", "-x")

#: Rotation taking glTF coordinates (+Y up, front +Z) to the solver's internal frame (y down, front −z).
R_INTERNAL_GLTF = np.diag([1.0, -1.0, -1.0])

_TO_GLTF = {
    "+y": np.eye(3),
    "+z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    "-z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    "-y": np.diag([-1.0, -1.0, 1.0]),
    "+x": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
    "-x": np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
}


def check_up(up: str) -> str:
    """``up`` normalised ("Y" → "+y"); raises ValueError naming the allowed values."""
    text = str(up).strip().lower()
    if text in ("x", "y", "z"):
        text = "+" + text
    if text not in UP_AXES:
        raise ValueError(f"mesh up axis must be one of {', '.join(UP_AXES)}, got {up!r}")
    return text


def rotation_to_gltf(up: str) -> np.ndarray:
    """3×3 proper rotation taking a mesh whose up axis is ``up`` to the glTF convention (table above)."""
    return _TO_GLTF[check_up(up)].copy()


def rotation_input_to_internal(up: str = "+y") -> np.ndarray:
    """3×3 proper rotation from a mesh's own frame (up axis ``up``) to the solver's internal frame."""
    return R_INTERNAL_GLTF @ rotation_to_gltf(up)
