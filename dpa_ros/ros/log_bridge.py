"""Forwards the library's Python logging (``dpa_ros.*``: pipeline, priors, export, scheduler) to a ROS logger.

ROS-free: it only needs an object with ``info``, ``warning`` and ``error`` methods (an rclpy logger).
"""
from __future__ import annotations

import logging

LIBRARY_LOGGER = "dpa_ros"


class RosLogHandler(logging.Handler):
    """A logging handler that writes each record, with its logger's name, to ``ros_logger``."""

    def __init__(self, ros_logger) -> None:
        super().__init__(logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            else:
                self.ros_logger.info(text)
        except Exception:  # logging must never raise
            pass


def attach(ros_logger) -> RosLogHandler:
    """Route the ``dpa_ros`` loggers (INFO and up) through ``ros_logger`` only; returns the handler."""
    handler = RosLogHandler(ros_logger)
    lib_logger = logging.getLogger(LIBRARY_LOGGER)
    lib_logger.addHandler(handler)
    lib_logger.propagate = False  # printed once, through the node's logger
    if lib_logger.level == logging.NOTSET or lib_logger.level > logging.INFO:
        lib_logger.setLevel(logging.INFO)
    return handler


def detach(handler: RosLogHandler) -> None:
    logging.getLogger(LIBRARY_LOGGER).removeHandler(handler)
