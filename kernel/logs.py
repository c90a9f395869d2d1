"""Logging for the `onlycs` process: JSON lines (or text) to stderr for journald, and a
size-rotated file when a log folder is configured. Ray Serve's own component logs
use the same encoding and rotation (see `ray_logging_env` and `serve_logging`)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import time
from pathlib import Path
from typing import Any

from kernel.config import LoggingConfig

FILE_NAME = "onlycs.log"
_STANDARD = set(vars(logging.makeLogRecord({})))


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Extras passed with `extra=` (request_id, tier...); "_"-names are Ray's internals.
        line |= {k: v for k, v in vars(record).items()
                 if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _formatter(encoding: str) -> logging.Formatter:
    return JSONFormatter() if encoding == "JSON" else logging.Formatter(TEXT_FORMAT)


def configure(config: LoggingConfig) -> None:
    root = logging.getLogger()
    root.setLevel(config.level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if config.dir is not None:
        config.dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            Path(config.dir) / FILE_NAME, maxBytes=config.max_bytes,
            backupCount=config.backup_count, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(_formatter(config.encoding))
        root.addHandler(handler)


def ray_logging_env(config: LoggingConfig) -> dict[str, str]:
    """Ray rotates its own and Ray Serve's log files by these."""
    return {"RAY_ROTATION_MAX_BYTES": str(config.max_bytes),
            "RAY_ROTATION_BACKUP_COUNT": str(config.backup_count)}


def serve_logging(config: LoggingConfig) -> dict[str, Any]:
    """Ray Serve's LoggingConfig: JSON lines carry the request id of the request."""
    options: dict[str, Any] = {"encoding": config.encoding, "log_level": config.level,
                               "enable_access_log": True}
    if config.dir is not None:
        options["logs_dir"] = str(Path(config.dir) / "serve")
    return options
