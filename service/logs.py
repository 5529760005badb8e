"""Structured JSON logs with a request id.

Every record is one JSON object on stderr: time, level, logger, message, the
current request id (from a context variable set by the request middleware) and
any ``extra={...}`` fields (but not uvicorn's ``color_message``, an ANSI-coloured
copy of the message). The service's own loggers are all named ``switchboard.*``.
Transcript text must never be passed to a logger unless
``SWITCHBOARD_LOG_TRANSCRIPTS=true``; ``transcript_field`` enforces that for the few
places that could log text.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import msgspec

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "switchboard_request_id", default=None
)

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# uvicorn passes ``color_message`` (the message with ANSI colour escapes) for its own console formatter.
_DROPPED = frozenset({"color_message"})
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line. Exceptions are logged by type and location only.

    Why no exception message or traceback text: messages can carry request
    content (a decode error quoting the body, a transcript in a repr). The type
    and the raising frame are enough to find the bug.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in _DROPPED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc_where"] = exception_location(record.exc_info[2])
        return _encoder.encode(entry).decode("utf-8")


def exception_location(tb: Any) -> str | None:
    """``file:line in function`` of the innermost frame of a traceback."""
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}"


def configure_logging(level: str = "INFO") -> None:
    """Send the root logger (and uvicorn's) to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our middleware writes the access log (with request id, route template and key name).
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every URL at INFO; quiet it for the CLI and tests.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """A ``logging.config`` dict for uvicorn workers that uses the JSON formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        },
    }


def transcript_field(text: str, enabled: bool) -> str:
    """What may be logged for a transcript text: the text only when explicitly enabled."""
    return text if enabled else f"<{len(text)} chars redacted from logs>"
