"""structlog set-up, done once by the CLI (never at import time)."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

LEVELS = ("debug", "info", "warning", "error")


def default_format(stream: TextIO) -> Literal["json", "console"]:
    return "console" if stream.isatty() else "json"


def configure(level: str = "info", fmt: str | None = None, stream: TextIO = sys.stderr) -> None:
    # Imported here, not at the top: `--version` and `--help` build the parser (which
    # needs LEVELS) and never log.
    import structlog  # noqa: PLC0415 - lazily, see above

    renderer: structlog.typing.Processor
    chosen = fmt or default_format(stream)
    if chosen == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
