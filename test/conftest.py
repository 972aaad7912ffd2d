"""Test-wide settings: no network, and ROS 2 traffic isolated to this machine and this run."""
import os
import random

# Never reach a model hub from tests (DESIGN.md §4: no hub here; tokenizers would return junk).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# DDS discovery stays on localhost, in a domain of this test run's own, so that parallel runs and
# other ROS graphs on the machine never see each other. Child processes inherit both.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = os.environ.get("DPA_TEST_ROS_DOMAIN_ID") or str(random.SystemRandom().randint(1, 100))
