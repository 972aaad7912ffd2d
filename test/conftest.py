"""Test-wide settings: no network, ROS 2 traffic isolated to this machine and this run, and under
``CI=true`` no ROS test skipped for want of rclpy."""
import importlib
import os
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Never reach a model hub from tests (no hub is reachable in CI; tokenizers would return junk after long retries).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# DDS discovery stays on localhost, in a domain of this test run's own, so that parallel runs and
# other ROS graphs on the machine never see each other. Child processes inherit both.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = os.environ.get("DPA_TEST_ROS_DOMAIN_ID") or str(random.SystemRandom().randint(1, 100))


PHOTO = Path(__file__).parent / "assets" / "coffee.png"

#: what the ROS tests import (they skip, naming it, where it is missing); under CI=true, where
#: `make setup` has installed and built them, a missing one fails the run instead
CI_REQUIRED_MODULES = ("rclpy", "dpa_ros.msg", "dpa_ros.action")


def pytest_sessionstart(session):
    if os.environ.get("CI", "").lower() not in ("true", "1"):
        return
    missing = []
    for name in CI_REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        pytest.exit(f"CI=true but {', '.join(missing)} cannot be imported: the ROS tests would be skipped. "
                    "Run under `. ./activate.sh` after `make setup`.", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """The real test photo (CC0, see test/assets/README.md) as (200, 300, 3) uint8 RGB."""
    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.fixture
def require_weights():
    """``require_weights(cfg, section, profile)`` skips the test, naming the model and the command that
    fetches it, when that model's weights are not in weights_dir or the Hugging Face cache."""
    from dpa_ros.priors import weights

    def check(cfg, section: str, profile: str) -> None:
        spec = weights.spec_for(cfg, section)
        if weights.find(spec) is None:
            pytest.skip(f"weights absent: {spec.describe()} (dpa-weights download --profile {profile})")
    return check
