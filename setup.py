"""Pure-Python install of dpa_ros: the library and its command-line tools, no ROS needed.

`pip install -e .` gives `import dpa_ros` and the `dpa-*` commands. The ROS interfaces
(dpa_ros.msg, dpa_ros.action) come from the colcon build of CMakeLists.txt; see README.
"""
from setuptools import find_packages, setup

setup(
    name="dpa_ros",
    version="0.1.0",
    description="Zero-shot single-image 3D scene reconstruction by deep prior assembly, for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["dpa_ros", "dpa_ros.*"]),
    package_data={"dpa_ros": ["assets/*", "assets/**/*"]},
    install_requires=["numpy", "scipy", "pyyaml", "trimesh", "pillow", "torch", "tqdm"],
    entry_points={
        "console_scripts": [
            "dpa-reconstruct = dpa_ros.cli:main",
            "dpa-eval = dpa_ros.geometry.eval_cli:main",
            "dpa-export = dpa_ros.export.cli:main",
            "dpa-weights = dpa_ros.priors.weights_cli:main",
            "reconstruct_node = dpa_ros.ros.reconstruct_node:main",
        ]
    },
)
