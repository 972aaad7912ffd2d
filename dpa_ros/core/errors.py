"""The one error of every configuration check: :class:`ConfigError`."""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value out of range, of the wrong type, or an unknown key; ``str(err)`` is one
    line that names the field (``layout config needs restarts >= 1, got 0``).

    Raised by every config on construction (:class:`~dpa_ros.geometry.layout.config.LayoutConfig`,
    :class:`~dpa_ros.geometry.targets.TargetConfig`, :class:`~dpa_ros.geometry.physics.config.PhysicsConfig`)
    and by the profile loader (:class:`~dpa_ros.priors.config.ProfileError`, a subclass), so a caller
    catches one type wherever a configuration enters. A ValueError: input the caller can fix.
    """
