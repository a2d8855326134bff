"""Which log format ``loadkit errors`` reads: the bundled service's, nginx's, or a mapping.

Chosen from ``[logs]`` of acceptance.toml, with ``--preset`` taking precedence; each format is a
``LineReader`` that turns lines into request lines in the service's shape, so the breakdown never
knows which format it was handed.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadkit.config import LOG_PRESETS, LogsConfig
from loadkit.exceptions import ConfigError
from loadkit.logs.mapping import FieldMapping
from loadkit.logs.nginx import read_combined
from loadkit.logs.scan import LineReader, iter_log_objects

MAPPING = "mapping"
"""The name of a format given by ``[logs]`` field keys."""


@dataclass(frozen=True)
class LogFormat:
    """A log format: its name (``loadkit``, ``nginx``, ``mapping``) and how to read its lines."""

    name: str
    reader: LineReader


BUNDLED = LogFormat("loadkit", iter_log_objects)
NGINX = LogFormat("nginx", read_combined)


def log_format(config: LogsConfig | None = None, *, preset: str | None = None) -> LogFormat:
    """The format of ``preset`` (``--preset``) if given, else of ``[logs]``, else the bundled
    service's. Raises ConfigError for a preset not known."""
    if preset is not None:
        if preset not in LOG_PRESETS:
            raise ConfigError(
                f"--preset {preset!r} is not known; use one of {', '.join(LOG_PRESETS)} "
                "(or map another JSON log's fields in [logs] of --config)"
            )
        return NGINX if preset == "nginx" else BUNDLED
    if config is None:
        return BUNDLED
    if config.preset is not None:
        return NGINX if config.preset == "nginx" else BUNDLED
    if config.mapped_keys:
        return LogFormat(MAPPING, FieldMapping.from_config(config).reader)
    return BUNDLED
