"""Ask a running ``dpa_reconstructor`` for a reconstruction and print what it published.

    python -m dpa_ros.ros.demo_client                    # ~/snapshot (std_srvs/Trigger)
    python -m dpa_ros.ros.demo_client --action --prompt "cup. plate."   # ~/reconstruct, with feedback
    python -m dpa_ros.ros.demo_client --json             # machine-readable summary on stdout
    python -m dpa_ros.ros.demo_client --instances samples/room/instances.json   # goal with known objects

``--instances`` reads a ``dpa-reconstruct --instances`` file (label, mask PNG, mesh proposals, up)
and sends its entries as the goal's ``instances`` (``dpa_ros/msg/Instance``: mono8 masks,
absolute ``file://`` mesh URIs, which the node reads only under its ``mesh_roots``).

It waits for the node's service/action (``--wait-node`` s), subscribes to ``<node>/scene``,
``<node>/markers``, ``<node>/scene_cloud``, ``<node>/overlay`` and ``/tf_static`` (transient-local,
so nothing is missed), triggers one reconstruction, waits for the outputs that reconstruction
published and prints the objects, TF frames, cloud, markers, the overlay image (written as a PNG
with ``--save-overlay PATH``) and exported files. Exit code 0 on success, 1 when
the node reports a failure, 2 when the node or its outputs do not show up in time.

:func:`run_demo` does the same from Python and returns the summary as a dict.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import rclpy
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from dpa_ros.action import Reconstruct
from dpa_ros.msg import Instance, Scene
from dpa_ros.overlay import write_png
from dpa_ros.ros.conversions import image_to_rgb, numpy_to_image

LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
TF_LATCHED = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
MARKER_TYPES = {v: k for k, v in vars(Marker).items() if k.isupper() and isinstance(v, int) and k not in (
    "ADD", "MODIFY", "DELETE", "DELETEALL")}


class _Client(Node):
    def __init__(self, node_name: str) -> None:
        super().__init__("dpa_demo_client")
        self.target = node_name.rstrip("/")
        self.got: dict[str, list] = {"scene": [], "markers": [], "cloud": [], "tf": [], "overlay": []}
        self.create_subscription(Scene, f"{self.target}/scene", lambda m: self.got["scene"].append(m), LATCHED)
        self.create_subscription(MarkerArray, f"{self.target}/markers", lambda m: self.got["markers"].append(m),
                                 LATCHED)
        self.create_subscription(PointCloud2, f"{self.target}/scene_cloud", lambda m: self.got["cloud"].append(m),
                                 LATCHED)
        self.create_subscription(TFMessage, "/tf_static", lambda m: self.got["tf"].append(m), TF_LATCHED)
        self.create_subscription(Image, f"{self.target}/overlay", lambda m: self.got["overlay"].append(m), LATCHED)
        self.snapshot = self.create_client(Trigger, f"{self.target}/snapshot")
        self.action = ActionClient(self, Reconstruct, f"{self.target}/reconstruct")

    def spin_until(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate() and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.05)
        return bool(predicate())


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _exported_files(message: str, scene: Scene | None) -> tuple[str | None, list[str]]:
    match = re.search(r"exported to (\S+?)(;|$)", message)
    folder = Path(match.group(1)) if match else None
    if folder is None and scene is not None:
        uris = [o.mesh_uri for o in scene.objects if o.mesh_uri]
        if uris:
            folder = Path(unquote(urlparse(uris[0]).path)).parent.parent
    if folder is None or not folder.is_dir():
        return None, []
    return str(folder), sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def goal_instances(path: Path) -> list[Instance]:
    """The entries of an instances JSON file (as ``dpa-reconstruct --instances`` reads it: ``label``,
    ``mask`` PNG and ``meshes`` paths relative to the file, optional ``up``) as goal ``Instance``
    messages; ValueError naming an unusable entry."""
    from dpa_ros.assemble import load_mask_png

    path = Path(path).resolve()
    entries = json.loads(path.read_text())
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of instances")
    out = []
    for i, e in enumerate(entries):
        try:
            mask = load_mask_png(path.parent / e["mask"])
            uris = [(path.parent / m).resolve().as_uri() for m in e["meshes"]]
        except (KeyError, TypeError, OSError) as exc:
            raise ValueError(f"{path}: instance {i}: {type(exc).__name__}: {exc}") from exc
        msg = Instance(label=str(e.get("label", "")), mask=numpy_to_image(mask.astype("uint8") * 255, "mono8"),
                       mesh_uris=uris)
        if e.get("up"):
            msg.up = str(e["up"])
        out.append(msg)
    return out


def _summary(scene: Scene | None, markers: MarkerArray | None, cloud: PointCloud2 | None,
             tf: TFMessage | None, frame_prefix_hint: str = "object_") -> dict:
    out: dict = {"objects": [], "frames": [], "cloud": None, "markers": {}, "timings_s": {},
                 "message_bytes": {name: len(serialize_message(msg)) for name, msg in
                                   (("scene", scene), ("markers", markers), ("scene_cloud", cloud), ("tf", tf))
                                   if msg is not None}}
    if scene is not None:
        out["frame_id"] = scene.header.frame_id
        out["stamp"] = scene.header.stamp.sec + scene.header.stamp.nanosec * 1e-9
        out["profile"] = scene.profile
        out["timings_s"] = {t.stage: round(t.seconds, 3) for t in scene.timings}
        out["background_planes"] = [p.label for p in scene.background_planes]
        for o in scene.objects:
            p = o.pose.position
            out["objects"].append({"id": o.id, "label": o.label, "score": round(float(o.score), 3),
                                   "position": [round(p.x, 3), round(p.y, 3), round(p.z, 3)],
                                   "scale": round(o.scale, 4), "fit_error": round(o.fit_error, 4),
                                   "vertices": len(o.mesh.vertices), "triangles": len(o.mesh.triangles),
                                   "mesh_uri": o.mesh_uri})
    if tf is not None:
        for t in tf.transforms:
            if frame_prefix_hint in t.child_frame_id:
                tr = t.transform.translation
                out["frames"].append({"child": t.child_frame_id, "parent": t.header.frame_id,
                                      "xyz": [round(tr.x, 3), round(tr.y, 3), round(tr.z, 3)]})
    if cloud is not None:
        out["cloud"] = {"points": cloud.width * cloud.height, "fields": [f.name for f in cloud.fields],
                        "frame_id": cloud.header.frame_id, "bytes": len(cloud.data)}
    if markers is not None:
        counts: dict[str, int] = {}
        for m in markers.markers:
            key = "DELETEALL" if m.action == Marker.DELETEALL else MARKER_TYPES.get(m.type, str(m.type))
            counts[key] = counts.get(key, 0) + 1
        out["markers"] = counts
    return out


def run_demo(node_name: str = "/dpa_reconstructor", use_action: bool = False, prompt: str = "",
             wait_node_s: float = 60.0, timeout_s: float = 600.0, log=print, save_overlay: Path | None = None,
             instances: list[Instance] | None = None) -> dict:
    """Trigger one reconstruction on ``node_name`` and collect what it published.

    ``instances`` (goal ``Instance`` messages, :func:`goal_instances`) are sent in an action goal.

    Returns a dict with ``success``, ``message``, ``objects``, ``frames``, ``cloud``, ``markers``,
    ``overlay``, ``exported_dir``, ``exported_files``, ``feedback`` and ``timings_s``; ``success`` is
    None when the node did not answer in time. With ``save_overlay`` the received ``~/overlay`` image
    is written there as a PNG. Calls ``rclpy.init`` itself when no context is initialised.
    """
    use_action = use_action or bool(instances)
    own_context = not rclpy.ok()
    if own_context:
        rclpy.init()
    client = _Client(node_name)
    result: dict = {"success": None, "message": "", "feedback": []}
    try:
        server = client.action if use_action else client.snapshot
        ready = (lambda: server.server_is_ready()) if use_action else (lambda: server.service_is_ready())
        log(f"waiting for {client.target} ({'action reconstruct' if use_action else 'service snapshot'}) ...")
        if not client.spin_until(ready, wait_node_s):
            result["message"] = f"{client.target} did not appear within {wait_node_s:.0f} s"
            return result
        client.spin_until(lambda: False, 0.5)  # let discovery settle
        t0 = time.monotonic()
        if use_action:
            def on_feedback(fb):
                stage, progress = fb.feedback.stage, round(float(fb.feedback.progress), 3)
                previous = result["feedback"][-1] if result["feedback"] else ("", -1.0)
                result["feedback"].append((stage, progress))
                if stage != previous[0] or progress >= 1.0 or int(progress * 10) != int(previous[1] * 10):
                    log(f"  feedback: {stage:<10s} {100 * progress:5.1f} %")  # each stage, every 10 %

            goal = Reconstruct.Goal(prompt=prompt, instances=list(instances or []))
            send = client.action.send_goal_async(goal, feedback_callback=on_feedback)
            if not client.spin_until(send.done, 30.0):
                result["message"] = "no answer to the goal within 30 s"
                return result
            handle = send.result()
            if not handle.accepted:
                result["success"], result["message"] = False, "goal rejected (node busy?)"
                return result
            res_future = handle.get_result_async()
            if not client.spin_until(res_future.done, timeout_s):
                result["message"] = f"no result within {timeout_s:.0f} s"
                return result
            res = res_future.result().result
            result["success"], result["message"] = bool(res.success), res.message
        else:
            future = client.snapshot.call_async(Trigger.Request())
            if not client.spin_until(future.done, timeout_s):
                result["message"] = f"no answer within {timeout_s:.0f} s"
                return result
            res = future.result()
            result["success"], result["message"] = bool(res.success), res.message
        result["seconds"] = round(time.monotonic() - t0, 2)
        # the outputs of *this* reconstruction: those stamped with its frame (the topics are latched,
        # so an older scene may arrive late); the stamp is in the result's scene / the service message
        if use_action and result["success"]:
            stamp = _stamp_ns(res.scene.header.stamp)
        else:
            m = re.search(r"of frame (\d+)\.(\d{9}) s", result["message"])
            stamp = int(m.group(1)) * 1_000_000_000 + int(m.group(2)) if m else None
        got = client.got

        def pick(key: str):
            for msg in reversed(got[key]):
                header = msg.markers[0].header if key == "markers" and msg.markers else getattr(msg, "header", None)
                if stamp is None or (header is not None and _stamp_ns(header.stamp) == stamp):
                    return msg
            return None

        def tf_frames():
            return {t.child_frame_id: t for m in got["tf"] for t in m.transforms
                    if stamp is None or _stamp_ns(t.header.stamp) == stamp}

        scene = markers = cloud = tf = None  # a failed request published nothing
        if result["success"]:
            client.spin_until(lambda: pick("scene") and pick("markers") and pick("cloud")
                              and len(tf_frames()) >= len(pick("scene").objects), 10.0)
            scene, markers, cloud = pick("scene"), pick("markers"), pick("cloud")
            tf = TFMessage(transforms=list(tf_frames().values()))
        result.update(_summary(scene, markers, cloud, tf))
        result["overlay"] = None
        if result["success"] and client.spin_until(lambda: pick("overlay") is not None, 5.0):
            overlay = pick("overlay")
            result["overlay"] = {"topic": f"{client.target}/overlay", "width": overlay.width,
                                 "height": overlay.height, "encoding": overlay.encoding, "saved_to": None}
            if save_overlay is not None:
                result["overlay"]["saved_to"] = str(write_png(save_overlay, image_to_rgb(overlay)))
        folder, files = _exported_files(result["message"], scene)
        result["exported_dir"], result["exported_files"] = folder, files
        return result
    finally:
        client.destroy_node()
        if own_context:
            rclpy.try_shutdown()


def format_report(r: dict) -> str:
    lines = [f"success: {r['success']}", f"message: {r['message']}"]
    if r.get("seconds") is not None:
        lines.append(f"request took {r['seconds']} s")
    if r.get("timings_s"):
        lines.append("stages: " + ", ".join(f"{k} {v} s" for k, v in r["timings_s"].items()))
    objs = r.get("objects") or []
    lines.append(f"objects ({len(objs)}) in frame {r.get('frame_id', '?')}:")
    for o in objs:
        lines.append(f"  {o['id']:>3} {o['label']:<12s} score {o['score']:.2f}  xyz {o['position']}  scale "
                     f"{o['scale']}  fit {o['fit_error']}  mesh {o['vertices']} v / {o['triangles']} f")
    frames = r.get("frames") or []
    lines.append(f"TF frames ({len(frames)}):")
    for f in frames:
        lines.append(f"  {f['parent']} -> {f['child']}  xyz {f['xyz']}")
    c = r.get("cloud")
    lines.append(f"scene cloud: {c['points']} points, fields {c['fields']}, {c['bytes']} bytes" if c
                 else "scene cloud: none received")
    lines.append(f"markers: {r.get('markers') or 'none received'}")
    o = r.get("overlay")
    lines.append(f"overlay: {o['width']}x{o['height']} {o['encoding']} on {o['topic']}"
                 + (f", saved to {o['saved_to']}" if o["saved_to"] else "") if o else "overlay: none received")
    if r.get("message_bytes"):
        lines.append("serialized sizes: " + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in r["message_bytes"].items()))
    files = r.get("exported_files") or []
    lines.append(f"exported files ({len(files)}) in {r.get('exported_dir')}:" if files else "exported files: none")
    lines.extend(f"  {f}" for f in files)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    argv = remove_ros_args(["demo_client"] + list(argv))[1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node", default="/dpa_reconstructor", help="fully qualified node name")
    ap.add_argument("--action", action="store_true", help="use ~/reconstruct (feedback) instead of ~/snapshot")
    ap.add_argument("--prompt", default="", help="detection prompt for the action goal")
    ap.add_argument("--wait-node", type=float, default=60.0, help="seconds to wait for the node")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the reconstruction")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--save-overlay", type=Path, help="write the received ~/overlay image to this PNG")
    ap.add_argument("--instances", type=Path, help="instances JSON (as dpa-reconstruct --instances): send its "
                    "known objects in a ~/reconstruct goal (implies --action)")
    args = ap.parse_args(argv)
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    try:
        instances = goal_instances(args.instances) if args.instances else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    r = run_demo(args.node, args.action, args.prompt, args.wait_node, args.timeout, log=log,
                 save_overlay=args.save_overlay, instances=instances)
    print(json.dumps(r, indent=2) if args.json else format_report(r), flush=True)
    if r["success"] is None:
        return 2
    return 0 if r["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
