"""Layout solver: pose, scale and proposal choice per instance, batched, with field lookups.

Input meshes follow the contract of :mod:`dpa_ros.geometry.mesh_frames` (glTF: +Y up, front +Z;
another ``up`` per problem); :func:`~dpa_ros.geometry.layout.problem._prepare_proposal` rotates each
into the solver's internal frame once, by
:func:`~dpa_ros.geometry.mesh_frames.rotation_input_to_internal`, and every returned
``T_camera_object`` maps the mesh as given (its own frame and units) into the camera optical frame.

For every instance, mesh proposal and restart the solver optimises a similarity transform
(rotation R, centre c, uniform scale s; 7 DoF, or 5 DoF — yaw about gravity, c, s — when
gravity is known) that places the proposal's surface in the optical frame (metres), minimising

    L = ½ (D(X → S) + D(S_vis → observed)) + λ · ½ (D2(π(S) → mask) + D2(mask → π(S)))

The objective, its occlusion and visibility weights, the scan that starts the chains and why
each is so are described once, in docs/method.md (section 6, "Layout"). Where each part lives:
``D(X → S)`` reads the proposal's closest-point field
(:func:`~dpa_ros.geometry.fields.closest_point_field`); ``D(S_vis → observed)`` weighs samples by
:func:`own_surface`, ``VISIBILITY_EVERY`` and ``FACING_RAMP`` and carries the ``M2T_PRIOR``; the
two image terms read the mask's distance transform and at most ``silhouette_points`` mask samples
(:mod:`~dpa_ros.geometry.layout.objective`). Normalised image units are ((u − cx)/fx, (v − cy)/fy).
Each term costs O(N + M) per iteration except the silhouette search, which is bounded by
2 × ``silhouette_points`` squared. The gradient
steps read closest points from the field; every score that chooses (between stages, the final
objective, :func:`layout_objective`) uses exact closest points (point-triangle search). The
scan is :func:`~dpa_ros.geometry.layout.search._scan` and
:func:`~dpa_ros.geometry.layout.search._scan_starts`. Parameters are dimensionless (centre in
units of the initial radius, log-scale, rotation in radians), optimised by Adam with one learning
rate, cosine-decayed to a tenth over all iterations.

Coarse-to-fine schedule (:meth:`LayoutConfig.schedule`): stage 1 runs every restart on a coarse
point subset; then only the best ``keep_restarts`` restarts of each (instance, proposal) go on,
on more points, and the last stage refines the best one on all ``points``. Which restarts go on is
scored exactly on all ``points``: on the coarse subset, a chain still converging into a narrow
basin (a mostly hidden object) often ranked below a wrong one. Every surviving chain runs
``iterations`` Adam steps in total. The final objective, at full size, picks the best restart per
proposal (``proposal_errors``) and the best proposal per instance; all proposals of an instance
are scored on the same target points and mask samples.

All chains run as one batch: the objective is a sum of independent per-chain objectives and
Adam is element-wise, so each chain follows the trajectory it would follow alone
(:func:`layout_objective` evaluates the same objective for given poses, one problem at a time).
:mod:`dpa_ros.geometry.layout_legacy` keeps the previous solver (sample-to-sample Chamfer) and
its per-problem reference loop.
"""

from dpa_ros.geometry.layout.config import LayoutConfig, checked_config
from dpa_ros.geometry.layout.optimise import layout_objective, solve_layout
from dpa_ros.geometry.layout.poses import gravity_alignment
from dpa_ros.geometry.layout.problem import LayoutProblem, LayoutResult, depth_edges, open_direction, own_surface

__all__ = ["LayoutConfig", "LayoutProblem", "LayoutResult", "checked_config", "depth_edges", "gravity_alignment",
           "layout_objective", "open_direction", "own_surface", "solve_layout"]
