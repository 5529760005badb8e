"""JSON log lines: request id, extras, exceptions by type and place only; no ANSI colour copies;
one logger namespace."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from service.logs import REQUEST_ID, JsonFormatter, transcript_field, uvicorn_log_config


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("switchboard.test", logging.INFO, __file__, 1, message, None, None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_with_request_id_and_extras() -> None:
    token = REQUEST_ID.set("req-1")
    try:
        line = json.loads(JsonFormatter().format(record("hello", route="/v1/analyze", status=200)))
    finally:
        REQUEST_ID.reset(token)
    assert line["msg"] == "hello" and line["request_id"] == "req-1" and line["level"] == "INFO"
    assert line["route"] == "/v1/analyze" and line["status"] == 200 and line["ts"].endswith("Z")


def test_exceptions_are_logged_without_their_message() -> None:
    try:
        raise ValueError("the customer said: my SSN is 123-45-6789")
    except ValueError as exc:
        rec = record("failed")
        rec.exc_info = (type(exc), exc, exc.__traceback__)
    text = JsonFormatter().format(rec)
    line = json.loads(text)
    assert line["exc_type"] == "ValueError" and "test_logs.py" in line["exc_where"]
    assert "SSN" not in text and "123-45" not in text


def test_transcript_field() -> None:
    assert transcript_field("secret words", enabled=False) == "<12 chars redacted from logs>"
    assert transcript_field("secret words", enabled=True) == "secret words"


def test_uvicorn_config_uses_json() -> None:
    config = uvicorn_log_config("INFO")
    assert config["formatters"]["json"]["()"] == "service.logs.JsonFormatter"
    assert config["loggers"]["uvicorn.access"]["propagate"] is False


def test_uvicorn_color_message_is_dropped() -> None:
    # What uvicorn's logger.info("Started server process [%d]", pid, extra={"color_message": ...}) makes.
    rec = logging.getLogger("uvicorn.error").makeRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        "Started server process [%d]",
        (42,),
        None,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    line = JsonFormatter().format(rec)
    assert json.loads(line)["msg"] == "Started server process [42]"
    assert "color_message" not in line and "\\u001b" not in line


def test_every_logger_is_in_the_switchboard_namespace() -> None:
    root = Path(__file__).resolve().parents[2]
    named = re.compile(r"logging\.getLogger\(([^)]*)\)")
    offenders = []
    for folder in ("service", "models", "routing"):
        for source in (root / folder).rglob("*.py"):
            for argument in named.findall(source.read_text(encoding="utf-8")):
                if argument.startswith('"switchboard.') or argument in (
                    "",
                    '"uvicorn.access"',
                    '"httpx"',
                    "name",
                ):
                    continue
                offenders.append(f"{source.relative_to(root)}: getLogger({argument})")
    assert offenders == []
