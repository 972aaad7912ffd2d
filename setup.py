"""Pure-Python install of dpa_ros: the library and its command-line tools, no ROS needed.

`pip install -e .` gives `import dpa_ros` and the `dpa-*` commands. The ROS interfaces
(dpa_ros.msg, dpa_ros.action) come from the colcon build of CMakeLists.txt; see README.
"""
from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="dpa_ros",
    version="0.1.0",
    description="Zero-shot single-image 3D scene reconstruction by deep prior assembly, for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    # dpa_testing/ (synthetic test scenes for test/, bench/, scripts/) is not part of the install.
    packages=find_packages(include=["dpa_ros", "dpa_ros.*"]),
    # Versions that are known to work together are pinned in requirements/lock.txt.
    install_requires=[
        "numpy", "scipy", "pyyaml", "pillow", "tqdm", "trimesh", "lxml", "usd-core", "open3d",
        "opencv-python-headless", "torch", "torchvision", "transformers", "diffusers", "accelerate",
        "segment-anything", "open_clip_torch", "huggingface-hub", "safetensors", "vhacdx", "coacd", "mujoco",
    ],
    # Profiles are found under <prefix>/share/dpa_ros/config/profiles (dpa_ros.priors.profiles).
    data_files=[("share/dpa_ros/config/profiles", [str(p) for p in sorted(Path("config/profiles").glob("*.yaml"))]),
                ("share/dpa_ros/config", ["config/reconstruct.yaml"]),
                ("share/dpa_ros/launch", ["launch/reconstruct.launch.py"]),
                ("share/dpa_ros/rviz", ["rviz/dpa.rviz"])],
    entry_points={
        "console_scripts": [
            "dpa-reconstruct = dpa_ros.cli.reconstruct:main",
            "dpa-eval = dpa_ros.cli.evaluate:main",
            "dpa-export = dpa_ros.cli.export:main",
            "dpa-sim-check = dpa_ros.cli.sim_check:main",
            "dpa-weights = dpa_ros.cli.weights:main",
            "reconstruct_node = dpa_ros.ros.reconstruct_node:main",
        ]
    },
)
