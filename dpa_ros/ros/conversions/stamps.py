"""Message time stamps and headers, and the error every conversion raises.

Pure functions, no node and no DDS. Malformed input in any ``dpa_ros.ros.conversions`` module raises
:class:`ConversionError` (a ``ValueError``) whose text is a one-line reason fit for a failed action result.
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from std_msgs.msg import Header


class ConversionError(ValueError):
    """A message that cannot be converted; ``str(err)`` is a one-line reason."""


# --------------------------------------------------------------------------------------------- time
def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_header(frame_id: str, stamp: Time | int | None) -> Header:
    """A Header for ``frame_id`` at ``stamp`` (a Time, integer nanoseconds, or None for zero)."""
    if stamp is None:
        stamp = Time()
    elif not isinstance(stamp, Time):
        stamp = ns_to_stamp(stamp)
    return Header(frame_id=frame_id, stamp=stamp)
