"""The ``switchboard`` command line.

``serve``        run the HTTP service (uvicorn + uvloop, optional worker processes)
``analyze FILE`` score transcripts from a JSON or JSONL file (or ``-``) and print decisions
``policy check`` validate a policy file
``policy test``  run a policy test suite (labelled conversations) through the model pack and a policy
``reasons check FILE``     validate and measure a custom contact reasons file with the model pack
``reasons suggest EXPORT`` candidate reasons from the exported turns the pack could not name
``callbacks list|show|redrive`` the decision-callback outbox: dead letters, sending again
``slo rules``    Prometheus alert rules from the policy's friction SLOs (``[[slos]]``)
``export``       write closed (or all given) conversations from the store as JSONL
``report``       the journey report: one self-contained HTML file (store counters or an export)
``outcomes import FILE.csv`` record conversation outcomes in bulk (CRM, WFM, surveys)
``keygen``       make an API key and the hash to put in SWITCHBOARD_API_KEYS
``pack``         build model packs (the ``python -m export`` pipeline)

Exit codes: 0 ok, 1 a checked input is invalid, 2 usage/configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from routing.errors import ReasonsError
from service.errors import ServiceError, SettingsError
from service.settings import Settings, add_serve_flags, cli_values, hash_api_key


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``switchboard`` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["pack"]:
        return _pack(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    except ReasonsError as exc:
        print(f"switchboard: configuration error: SWITCHBOARD_REASONS: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the HTTP service",
        usage="switchboard serve [-h] [--SETTING VALUE ...]",
        description="Run the HTTP service. Every setting is a flag and an environment variable "
        "(SWITCHBOARD_<NAME>); a flag wins over the variable, the variable over the default.",
    )
    add_serve_flags(serve)
    serve.set_defaults(handler=_serve)

    analyze = sub.add_parser("analyze", help="analyze transcripts from a JSON or JSONL file ('-' = stdin)")
    analyze.add_argument(
        "file", help="JSON object, JSON array of objects, or JSONL; the /v1/analyze body shape"
    )
    analyze.add_argument(
        "--full", action="store_true", help="print the whole analysis, not just the decision"
    )
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar")
    analyze.set_defaults(handler=_analyze)

    policy = sub.add_parser("policy", help="policy tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser("check", help="validate a policy TOML file")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_policy_check)
    test = policy_sub.add_parser(
        "test",
        help="run a policy test suite: conversations with the route, queue and rule each must get",
        description="Score every turn of the suite's conversations with the model pack, replay them turn "
        "by turn through the policy, and print a confusion table of expected vs actual routes and every "
        "failure with its explanation. Exit 1 if any expectation fails.",
    )
    test.add_argument("suite", type=Path, help="suite TOML file (see routing/suite.py)")
    test.add_argument("--policy", type=Path, help="policy TOML file (default: the bundled default policy)")
    test.add_argument(
        "--pack", type=Path, help="model pack folder (default: SWITCHBOARD_PACK or the bundled pack)"
    )
    test.add_argument("--brief", action="store_true", help="failures without their explanations")
    test.set_defaults(handler=_policy_test)

    export = sub.add_parser("export", help="export conversations from the configured store as JSONL")
    export.add_argument("ids", nargs="*", help="conversation ids (default: every closed conversation)")
    export.add_argument("--out", type=Path, help="output file (default stdout)")
    export.add_argument("--delete", action="store_true", help="erase each conversation after exporting it")
    export.set_defaults(handler=_export)

    keygen = sub.add_parser("keygen", help="make an API key and its SWITCHBOARD_API_KEYS entry")
    keygen.add_argument("--name", default="default", help="a name for logs and metrics")
    keygen.set_defaults(handler=_keygen)

    from service.reasons_cli import add_reasons_parser

    add_reasons_parser(sub)

    from service.callbacks_cli import add_callbacks_parser

    add_callbacks_parser(sub)

    from service.slo_cli import add_slo_parser

    add_slo_parser(sub)

    from service.report_cli import add_report_parser

    add_report_parser(sub)

    from service.outcomes_cli import add_outcomes_parser

    add_outcomes_parser(sub)

    # Listed for --help only: main() hands `pack ...` to the export pipeline before parsing.
    sub.add_parser(
        "pack", help="build model packs: train, onnx, quantize, hf, evaluate (needs the [export] extra)"
    )
    return parser


def _pack(arguments: list[str]) -> int:
    """Hand over to ``python -m export`` (imported only here: it needs torch)."""
    from export.cli import main as export_main

    return export_main(arguments)


# ---- serve -----------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.logs import configure_logging, uvicorn_log_config
    from service.metrics import MULTIPROC_ENV

    flags = cli_values(args)
    settings = Settings.from_env(os.environ, cli=flags)  # fail fast here, in the parent, naming the flag
    # Flags become environment so that every worker process builds the same Settings.
    os.environ.update(flags)
    if settings.workers > 1 and settings.inference.intra_op_threads is None:
        # Split the CPU quota between workers instead of letting each grab all cores.
        from models.cpu import cpu_quota

        os.environ["SWITCHBOARD_INTRA_OP_THREADS"] = str(max(1, cpu_quota().cpus // settings.workers))
    configure_logging(settings.log_level)
    metrics_dir = _metrics_dir(settings.data_dir) if settings.workers > 1 else None
    try:
        _run_uvicorn(uvicorn, settings, uvicorn_log_config(settings.log_level))
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
    return 0


def _metrics_dir(data_dir: Path) -> Path:
    """A fresh folder for the workers' metric files, named in ``PROMETHEUS_MULTIPROC_DIR``.

    Set before the workers start so prometheus_client in each of them keeps its values in
    files there, and ``/metrics`` sums them. One folder per ``serve`` process (by pid) under
    ``DATA_DIR/metrics``; folders of ``serve`` processes no longer running are removed, so a
    restart never counts a previous run's requests.
    """
    from service.metrics import MULTIPROC_ENV

    root = data_dir / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and _pid_alive(int(old.name)) and int(old.name) != os.getpid():
            continue
        shutil.rmtree(old, ignore_errors=True)
    folder = root / str(os.getpid())
    folder.mkdir()
    os.environ[MULTIPROC_ENV] = str(folder.resolve())
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_uvicorn(uvicorn: Any, settings: Settings, log_config: dict[str, Any]) -> None:
    uvicorn.run(
        "service.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools parses HTTP in C (much cheaper than h11 per request); h11 if it is missing.
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_config=log_config,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


# ---- analyze ---------------------------------------------------------------------------------------


def read_transcripts(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, raw JSON)`` per transcript: a JSON object, a JSON array, or JSONL."""
    data = stream.read()
    stripped = data.lstrip()
    if stripped.startswith(b"["):
        for position, item in enumerate(msgspec.json.decode(data, type=list[msgspec.Raw])):
            yield position + 1, bytes(item)
        return
    lines = [(n + 1, line) for n, line in enumerate(data.splitlines()) if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith(b"{") for _, line in lines):
        try:  # one pretty-printed JSON object also has several lines starting with "{"
            msgspec.json.decode(data)
        except msgspec.DecodeError:
            yield from lines
            return
    yield 1, data


def _analyze(args: argparse.Namespace) -> int:
    settings = Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})
    if args.file == "-":
        items = list(read_transcripts(sys.stdin.buffer))
    else:
        with open(args.file, "rb") as handle:
            items = list(read_transcripts(handle))
    return asyncio.run(_analyze_all(settings, items, args))


async def _analyze_all(settings: Settings, items: list[tuple[int, bytes]], args: argparse.Namespace) -> int:
    """Same code path as ``POST /v1/analyze``, with predictions on the caller's thread (no HTTP)."""
    from tqdm import tqdm

    from models.packs import DEFAULT_PACK
    from models.runtime import Runtime
    from service.analysis import Analyzer, models_summary
    from service.app import runtime_config
    from service.inference import DirectInference
    from service.metrics import Metrics
    from service.policy_source import PolicySource
    from service.reasons import attach_runtime, source_from_settings
    from service.schemas import AnalyzeRequest

    metrics = Metrics()
    reasons = source_from_settings(settings, metrics)
    policies = PolicySource(settings.policy_path, metrics, reasons=reasons.reasons)
    runtime = await asyncio.to_thread(
        Runtime.load, settings.pack_dir or DEFAULT_PACK, runtime_config(settings)
    )
    await asyncio.to_thread(attach_runtime, reasons, runtime)

    analyzer = Analyzer(
        settings, policies, DirectInference(runtime), models_summary(runtime.info), metrics, reasons=reasons
    )
    encoder = msgspec.json.Encoder()
    failures = 0
    show = not args.no_progress and args.file != "-" and len(items) > 1
    for line, raw in tqdm(items, desc="transcripts", unit="conv", disable=not show, file=sys.stderr):
        try:
            request = msgspec.json.decode(raw, type=AnalyzeRequest)
            result = await analyzer.analyze(request)
        except (msgspec.DecodeError, ServiceError) as exc:
            failures += 1
            print(f"{args.file}:{line}: {_describe(exc)}", file=sys.stderr)
            continue
        payload: Any = result if args.full else _decision_line(result)
        sys.stdout.write(encoder.encode(payload).decode("utf-8") + "\n")
        sys.stdout.flush()
    return 1 if failures else 0


def _describe(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        fields = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        return f"{exc.detail}" + (f" ({fields})" if fields else "")
    return f"invalid transcript: {exc}"


def _decision_line(result: Any) -> dict[str, Any]:
    decision = result.decision
    return {
        "conversation_id": result.conversation_id,
        "route": decision.route,
        "queue": decision.queue,
        "priority": decision.priority,
        "rule": decision.rule,
        "guardrail": decision.guardrail,
        "category": result.contact_reason.category,
        "intent": result.contact_reason.intent,
        "confidence": round(result.contact_reason.confidence, 4),
        "sentiment": result.sentiment.label,
        "trend": result.sentiment.trend,
        "language": result.language.code if result.language is not None else None,
        "resolved": decision.resolved,
        "policy": decision.policy.version,
    }


# ---- policy check ----------------------------------------------------------------------------------


def _policy_check(args: argparse.Namespace) -> int:
    from routing.errors import PolicyError
    from service.policy_source import validate_policy_text

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{args.file}: cannot read ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    from service.reasons_cli import load_reason_set

    reasons = load_reason_set(Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"}))
    try:
        policy = validate_policy_text(text, reasons)  # custom reasons (SWITCHBOARD_REASONS) are valid labels
    except PolicyError as exc:
        print(f"{args.file}: invalid policy", file=sys.stderr)
        for message in exc.errors:
            print(f"  - {message}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok (version {policy.version}, hash {policy.hash}, {len(policy.rules)} rules)")
    return 0


def _policy_test(args: argparse.Namespace) -> int:
    from routing.errors import PolicyError
    from routing.suite import SuiteError, format_report
    from service.policy_test import (
        active_reasons,
        load_runtime,
        load_suite,
        load_test_policy,
        reasons_source,
        run_suite,
    )

    try:
        suite = load_suite(args.suite)
        reasons = reasons_source()  # as the service: custom contact reasons are valid labels
        policy = load_test_policy(args.policy, reasons)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"switchboard policy test: cannot read ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    except (SuiteError, PolicyError) as exc:
        print(f"switchboard policy test: {exc}", file=sys.stderr)
        return 2
    pack = args.pack or Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"}).pack_dir
    runtime = load_runtime(pack)
    try:
        run = run_suite(suite, policy, runtime, active_reasons(reasons, runtime))
    except ValueError as exc:
        print(f"switchboard policy test: {exc}", file=sys.stderr)
        return 2
    print(format_report(run.report, suite.cases, explain=not args.brief))
    print(f"({run.seconds:.1f} s)")
    return 0 if run.report.passed else 1


# ---- export ----------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    settings = Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})
    return asyncio.run(_export_async(settings, list(args.ids), args.out, args.delete))


async def _export_async(settings: Settings, ids: list[str], out: Path | None, delete: bool) -> int:
    from service.app import create_app
    from service.errors import NotFound

    # The app's own conversation service (its pack is never loaded here): ``--delete`` then takes
    # the one erase path, so queued callbacks and replay-guard entries go with the conversation.
    service = create_app(settings).state.service
    conversations = service.conversations
    encoder = msgspec.json.Encoder()
    missing = 0
    handle: IO[str] = open(out, "w", encoding="utf-8") if out else sys.stdout  # noqa: SIM115
    try:
        targets = ids or await conversations.closed_ids()
        for conversation_id in targets:
            try:
                record = await conversations.export(conversation_id)
            except NotFound:
                missing += 1
                print(f"switchboard export: {conversation_id}: not found", file=sys.stderr)
                continue
            handle.write(encoder.encode(record).decode("utf-8") + "\n")
            if delete:
                await conversations.erase(conversation_id)
    finally:
        if out:
            handle.close()
        await service.outbox.stop()
        await service.store.close()
    return 1 if missing else 0


# ---- keygen ----------------------------------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    token = "sb_" + secrets.token_urlsafe(32)
    print(f"API key (give to the client, shown once): {token}")
    print(f"SWITCHBOARD_API_KEYS entry:               {args.name}={hash_api_key(token)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
