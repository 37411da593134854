"""The dashboard server's logs in shadowlab's format (`SHADOWLAB_LOG_FORMAT`): its records and Streamlit's.

`shadowlab dashboard` becomes the Streamlit server (exec), so the app configures logging itself, once per
server process, from the settings it reads (`dashboard/app.py`).
"""

from __future__ import annotations

import functools
import logging

from streamlit import logger as streamlit_logger

from shadowlab.config import LogFormat
from shadowlab.logs import configure_logging

__all__ = ["configure_server_logging"]

log = logging.getLogger("dashboard")


def _propagate(logger: logging.Logger) -> None:
    """Drop Streamlit's own text handler from `logger` and let its records reach the root's JSON handler."""
    handler = getattr(logger, "streamlit_console_handler", None)
    if isinstance(handler, logging.Handler):
        logger.removeHandler(handler)
    logger.propagate = True


@functools.cache
def configure_server_logging(level: str, fmt: LogFormat) -> None:
    """`shadowlab.logs.configure_logging`, once per process; with JSON, Streamlit's loggers follow it.

    Streamlit gives each of its loggers a text handler and stops propagation (`streamlit.logger.
    setup_formatter`, which it calls for every logger it creates): in JSON mode that function is replaced
    so that the loggers it creates later propagate too. Text mode keeps Streamlit's own format.
    """
    configure_logging(level, fmt)
    if fmt == "json":
        streamlit_logger.setup_formatter = _propagate
        for existing in list(streamlit_logger._loggers.values()):
            _propagate(existing)
    log.info("dashboard server logging as %s", fmt, extra={"log_format": fmt})
