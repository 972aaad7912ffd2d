"""Under CI=true a missing rclpy fails the run; elsewhere the ROS tests skip and say why.

rclpy is hidden from a child pytest by a module of that name, first on its path, that raises
ModuleNotFoundError on import, as a missing package does."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(tmp_path, ci: str | None, test: str) -> subprocess.CompletedProcess:
    hide = tmp_path / "hide"
    hide.mkdir(exist_ok=True)
    (hide / "rclpy.py").write_text('raise ModuleNotFoundError("No module named \'rclpy\' (hidden by the test)")\n')
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(hide), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_ci_fails_without_rclpy(tmp_path):
    proc = run_pytest(tmp_path, "true", "test/test_messages.py")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "CI=true but rclpy (No module named 'rclpy' (hidden by the test)) cannot be imported" in proc.stdout


def test_outside_ci_the_ros_tests_skip_with_the_reason(tmp_path):
    proc = run_pytest(tmp_path, None, "test/test_messages.py")
    assert proc.returncode == 5, proc.stdout + proc.stderr  # pytest's "no tests ran": the module skipped
    assert "SKIPPED" in proc.stdout and "rclpy missing: run under `. ./activate.sh` after `make setup`" in proc.stdout
    assert "1 skipped" in proc.stdout and " passed" not in proc.stdout


def test_ci_with_rclpy_present_runs(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_layering.py"],
                          cwd=ROOT, env={**os.environ, "CI": "true"}, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
