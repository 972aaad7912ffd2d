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

* ``D(X → S)``: mean distance (m) of the instance's target points X to the placed mesh *surface*,
  from a closest-point field of the proposal (:func:`~dpa_ros.geometry.fields.closest_point_field`)
  interpolated trilinearly in the object frame. No sample floor: the distance is zero on the surface.
* ``D(S_vis → observed)``: mean distance (m) from each *visible* mesh surface sample to the observed
  surface along its camera ray: ``|z − z_obs(u, v)| · |(x/z, y/z, 1)|``, with ``z_obs`` from the
  instance's inverse depth, bilinear (exact on planes). A sample is visible when it faces the
  camera, the mesh does not hide it from the camera (rays cast against the proposal's surface,
  refreshed every ``VISIBILITY_EVERY`` steps), it projects inside the image and into the
  instance's own surface (:func:`own_surface`: at least one pixel inside its mask and off any
  depth edge, so the bilinear depth is interpolated on that surface, never extrapolated past the
  mask or the image border), and the observed surface is not in front of it by more than
  ``occlusion_margin`` (else another object hides it; the problem's ``supporting`` pixels — the
  fitted floor and walls it stands in front of — hide nothing, so a part sunk into the floor
  pays). Parts cut by the image border, hidden by other objects or by the object itself, or
  facing away therefore cost nothing. Except for the self-occlusion, each test is a weight
  continuous in the pose (the mask read bilinearly; ramps over the pixel past the border, over
  1–2 × ``occlusion_margin`` and the last ``FACING_RAMP`` of the cosine), and the mean carries a
  prior of ``M2T_PRIOR`` samples' worth of D(X → S): a mean over few samples that jumps as one
  crosses an edge sends the gradient steps uphill.
* ``D2(π(S) → mask)``: mean distance (normalised image units, ≈ radians) of projected mesh samples
  to the mask, from the mask's exact Euclidean distance transform less one pixel (a silhouette
  covers a mask pixel's centre, so its edge may reach a pixel further), bilinear; free outside
  the image and where an observed surface (not a supporting one) is in front of the sample
  (occlusion).
* ``D2(mask → π(S))``: mean distance of at most ``silhouette_points`` mask samples to the nearest
  of twice as many projected mesh samples (the only nearest-neighbour search left), minus 1.5 ×
  the mean spacing of the projected samples that land in the mask (a hinge), so a mask pixel
  inside the silhouette costs nothing. Twice as many, because the hinge, a free margin, shrinks
  as they get denser.

Normalised image units are ((u − cx)/fx, (v − cy)/fy). Each term costs O(N + M) per iteration
except the silhouette search, which is bounded by 2 × ``silhouette_points`` squared.

The gradient steps read closest points from the field; every score that chooses (between stages,
the final objective, :func:`layout_objective`) uses exact closest points (point-triangle search),
which a field cannot give for surfaces closer together than its cells (both faces of a board).

Initialisation, a scan (:func:`~dpa_ros.geometry.layout.search._scan`): the initial size from the
mask (its RMS radius in the image plane times the target's median depth) times each of ``scan_scales``, for each of
``scan_rotations`` rotations (7 DoF — the internal frame's orientation, the front facing the
camera, then uniformly random rotations; 5 DoF — the up axis on gravity and yaws evenly spaced
over 360°). Each hypothesis starts on the mask's mean ray behind the visible surface; a few
point-to-plane ICP steps on the field move its centre onto the target points, then it is scored.
Each scale's best hypothesis (over rotations and shifts) starts a chain, and the rest of the
``restarts`` start from the best scale of each of the best rotations
(:func:`~dpa_ros.geometry.layout.search._scan_starts`).
Parameters are dimensionless (centre in units of the initial radius, log-scale, rotation in
radians), optimised by Adam with one learning rate, cosine-decayed to a tenth over all
iterations.

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
