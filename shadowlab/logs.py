"""Logs of the long-running stages (ingest, replay, score, the dashboard): on stderr, one JSON object per
line (`SHADOWLAB_LOG_FORMAT=json`, for a log shipper) or plain text (the default).

Each stage's command calls `configure_logging(settings.log_level, settings.log_format)` once at start.
Log records carry no secrets: no stage logs a settings object, a database URL's password or an API key.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from shadowlab.config import LogFormat

__all__ = ["JsonFormatter", "configure_logging", "json_logging"]

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Third-party loggers kept at WARNING: their INFO lines are per-connection chatter.
_NOISY = ("kafka", "alembic", "httpx", "httpx2", "httpcore", "httpcore2", "anthropic", "openai")


class _KafkaSlowStep(logging.Filter):
    """Drops kafka-python 3's "Task … ran for 0.3s (>0.100s threshold)" warning: it reports that the
    client's own I/O loop was not scheduled for a tenth of a second, which happens on any busy machine and
    asks nothing of the operator (it also broke the one-`error:`-line promise of a failing command)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not (message.startswith("Task ") and "threshold). It is blocking the event loop" in message)


_SLOW_STEP = _KafkaSlowStep()


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, any `extra=` fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def json_logging() -> bool:
    """Whether the root logger writes JSON (then progress lines become log records too)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Log to stderr at `level`, as JSON or text; third-party chatter is kept at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    selector = logging.getLogger("kafka.net.selector")
    if _SLOW_STEP not in selector.filters:
        selector.addFilter(_SLOW_STEP)
