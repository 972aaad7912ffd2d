"""Physical consistency after the layout: every object rests on its support, no two bodies interpenetrate.

:func:`settle_objects` takes the placed objects (each a mesh in its own frame and a 4×4 similarity
``T_camera_object``, object → camera optical frame, metres) and the fitted background, and moves each
object by a translation — never a rotation, never a scale — so that:

* it rests on its support: the floor, a support plane whose polygon lies under its centre, or the
  top of another object it stands on, ``contact_gap_m`` above it;
* no two bodies penetrate each other by more than a tolerance; overlapping pairs are pushed apart
  horizontally (perpendicular to gravity) by about the smallest translation, split between the two.

One exception to "translation only": an object is stretched (or compressed) along gravity with its
top held in place, by at most ``max_stretch`` of its height, so that its bottom meets the support
while its top, seen by the camera, and what stands on it stay where they were observed, when

* it carries others (something stands on its top: a table with cups on it);
* its observed depth points fit the stretched mesh better than the translated one (a generated
  table whose legs came out too short or too long, seen from above), and the correction is at
  least ``min_stretch_m``;
* or its support is farther below it (or deeper above its bottom) than ``max_shift_m``.

An object whose bottom is already at a support's top but whose centre lies just beyond its edge
(a generated table a little smaller than the real one) is slid the shortest way inside the edge,
by at most its own half-width, instead of falling past it.

Support planes the background fit found on an instance's own top (:func:`object_surfaces`) are
that instance's surface, not separate boards.

All the work is done in a gravity-aligned frame: the optical frame rotated so that +z is up
(``-background.gravity``); distances are metres in either frame.

Measuring "inside" robustly: generated meshes need not be watertight, so a point counts as inside a
mesh when the majority of ``occupancy_rays`` rays from it cross the mesh an odd number of times
(open3d ``RaycastingScene.compute_occupancy``); a hole lets one ray out but not most. Its depth is its
distance to that mesh's surface. Vertical and horizontal extents (what stands on what, how far to push)
use first hits of ray casts, which need no closed surface at all.
"""
from dpa_ros.geometry.physics.config import PhysicsConfig, PhysicsConfigError
from dpa_ros.geometry.physics.stage import ObjectPhysics, apply_results, object_surfaces, settle_objects

__all__ = ["ObjectPhysics", "PhysicsConfig", "PhysicsConfigError", "apply_results", "object_surfaces",
           "settle_objects"]
