"""docs/troubleshooting.md lists every failure message the node can answer a request with.

The messages are read from the source (not from a list kept by hand): every exception the node
turns into a failed request (InputError, FrameUnavailable, GravityUnavailable, Busy,
ReconstructionError, ComputeProcessError) raised with a literal message in the node's modules and the pipeline, every
``fail(...)`` of the node's worker, the frame buffer's reasons for an incomplete frame, and the
model loader's reason. A
message's key is its longest literal piece (the text between placeholders); the table's first
column must contain each key.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "troubleshooting.md"
SOURCES = ["dpa_ros/ros/reconstruct_node.py", "dpa_ros/ros/inputs.py", "dpa_ros/ros/frame_buffer.py",
           "dpa_ros/ros/gravity_sources.py", "dpa_ros/ros/scheduler.py", "dpa_ros/ros/compute.py",
           "dpa_ros/pipeline.py"]
FAILURES = {"InputError", "FrameUnavailable", "GravityUnavailable", "Busy", "ReconstructionError",
            "ComputeProcessError"}
# functions whose returned strings become a failure: frame_buffer's reasons for a FrameUnavailable, and the
# scheduler's PipelineLoader.ensure_loaded (why the models cannot be loaded)
REASON_FUNCTIONS = {"frame_buffer.py": {"_why_incomplete", "_missing", "select"}, "scheduler.py": {"ensure_loaded"}}


def _pieces(node) -> list[str] | None:
    """The literal pieces of a str / f-string / concatenation, or None when it is no literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out = [""]
        for v in node.values:
            if isinstance(v, ast.Constant):
                out[-1] += v.value
            else:
                out.append("")
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pieces(node.left), _pieces(node.right)
        return None if left is None or right is None else left + right
    return None


def _key(pieces: list[str]) -> str:
    return max((p.strip(" '(:;") for p in pieces), key=len)


def node_failure_messages() -> dict[str, str]:
    """{key: where} of every failure message (see the module docstring)."""
    found = {}
    for rel in SOURCES:
        tree = ast.parse((ROOT / rel).read_text())
        for fn in ast.walk(tree):
            for n in ast.walk(fn) if isinstance(fn, ast.FunctionDef) else ():
                literal = None
                if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call) and n.exc.args:
                    name = getattr(n.exc.func, "id", getattr(n.exc.func, "attr", ""))
                    literal = n.exc.args[0] if name in FAILURES else None
                elif isinstance(n, ast.Call) and getattr(n.func, "id", "") == "fail" and n.args:
                    literal = n.args[0]
                elif fn.name in REASON_FUNCTIONS.get(Path(rel).name, ()):
                    if isinstance(n, ast.Return) and n.value is not None:
                        literal = n.value
                    elif isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in ("reason", "notes"):
                        literal = n.value
                pieces = _pieces(literal) if literal is not None else None
                if pieces and len(_key(pieces)) >= 4:
                    found[_key(pieces)] = f"{rel}:{n.lineno}"
    return found


def table_messages() -> list[str]:
    rows = [line for line in TABLE.read_text().splitlines() if line.startswith("| ") and not line.startswith("|---")]
    return [row.split(" | ")[0].lstrip("| ").replace("`", "") for row in rows[1:]]


def test_the_scan_finds_the_messages_users_meet():
    keys = node_failure_messages()
    assert len(keys) >= 25
    for known in ("no image received yet on", "busy_policy reject", "no objects detected for prompt",
                  "cannot load profile", "depth image has no valid pixel"):
        assert any(known in k for k in keys), known


def test_troubleshooting_table_lists_every_failure_message_of_the_node():
    column = "\n".join(table_messages())
    missing = {k: where for k, where in node_failure_messages().items() if k not in column}
    assert not missing, f"add these messages to {TABLE.relative_to(ROOT)} (cause and fix): {missing}"
    for row in TABLE.read_text().splitlines()[1:]:
        if row.startswith("| ") and not row.startswith("|---") and "cause" not in row:
            assert row.count(" | ") == 2 and all(cell.strip() for cell in row.strip("|").split(" | ")), row
