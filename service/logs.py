"""Structured logs: one JSON object per line on stdout (DESIGN.md, contract 3).

Every line has ``ts``, ``level`` and ``event``; request lines add ``trace_id``, ``method``,
``endpoint`` (the route template), ``status_code``, ``error_kind`` and ``duration_ms``.
"""

from __future__ import annotations

import logging
from typing import TextIO

import structlog

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", *, stream: TextIO | None = None) -> None:
    """Send structlog output to ``stream`` as JSON lines; by default to whatever ``sys.stdout``
    is when a line is written (so redirections, e.g. pytest's capture, are honoured).

    Called by ``create_app``; logging is process-wide, so the last app built decides.
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger() -> structlog.typing.FilteringBoundLogger:
    """The service's logger."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("service")
    return logger
