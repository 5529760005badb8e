"""``python -m bench faults``: what the real service loses, duplicates or answers 5xx under faults.

Each scenario drives real ``switchboard serve`` processes over HTTP:

* ``kill -9 (SQLite)``: 16 clients append one turn at a time (fresh turn ids); the
  server is SIGKILLed mid-run and restarted on the same data; every request that got
  no answer is retried once (same id, same text), then every conversation is read
  back page by page. ``lost``: acknowledged (200) but not stored; ``duplicated``: a
  turn id stored more than once.
* ``kill -9 (Redis, 2 procs)``: the same with two service processes sharing a Redis
  (our own ``redis-server`` on a spare port); clients alternate between them and one
  is SIGKILLed and restarted.
* ``Redis frozen`` (SIGSTOP) and ``Redis stopped``: appends and GETs must be answered
  503 within 2 s rather than hang, and ``/v1/analyze`` (stateless) must still answer
  200; then how long the service takes to serve appends again once Redis is back.
* ``overload 2x``: open-loop appends at twice the measured saturation: 429s are fine,
  5xx are not.
* ``bad inputs``: the corpus ``tests/service/data/bad_inputs.jsonl`` (or a small
  built-in list), each answered with its expected 4xx, never a 5xx.
* ``webhook forgeries``: bad or missing signatures, tampered bodies, stale stamps on
  the generic, Chatwoot and Twilio webhooks must be refused (401/403); ``webhook
  replays``: a delivery sent again (also 8 copies at once) must not append twice.

Results: a table on stdout, ``bench/results/faults.txt`` and ``bench/results/faults.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl

from bench import http
from routing.policy import default_policy_text
from service.adapters.signatures import sign_timestamped, twilio_signature
from service.reasons import default_reasons_text

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "service" / "data" / "bad_inputs.jsonl"
DEFAULT_TXT = Path("bench/results/faults.txt")
DEFAULT_JSON = Path("bench/results/faults.json")
ANSWER_DEADLINE_S = 2.0  # a request during a Redis outage must be answered (503) within this
TURNS_PER_CONVERSATION = 10
KILL_IN_FLIGHT = 4  # the kill waits (up to 1 s) for this many appends in flight on the victim
OUTCOME = "x-switchboard-outcome"  # how a 204 webhook answer says accepted / ignored / duplicate
# What the corpus expects (tests/service/test_bad_input.py): an existing conversation and these limits.
KEEP_CONVERSATION = "keep-1"
KEPT_TURNS = [
    {"speaker": "customer", "text": "I was charged twice for my order", "id": "t1"},
    {"speaker": "agent", "text": "Let me look at that charge for you", "id": "t2"},
]
CORPUS_LIMITS = {
    "SWITCHBOARD_MAX_TURNS": "20",
    "SWITCHBOARD_MAX_TEXT_CHARS": "500",
    "SWITCHBOARD_MAX_BODY_BYTES": "16384",
}
# Used when the shared corpus is absent: (name, method, path, content type, body, expected status).
BUILTIN_BAD_INPUTS: tuple[tuple[str, str, str, str | None, bytes, int], ...] = (
    ("malformed-json", "POST", "/v1/analyze", "application/json", b'{"turns": [', 400),
    ("empty-turns", "POST", "/v1/analyze", "application/json", b'{"turns": []}', 422),
    (
        "unknown-speaker",
        "POST",
        "/v1/analyze",
        "application/json",
        b'{"turns":[{"speaker":"x","text":"a"}]}',
        422,
    ),
    (
        "text-plain",
        "POST",
        "/v1/analyze",
        "text/plain",
        b'{"turns":[{"speaker":"customer","text":"a"}]}',
        415,
    ),
    (
        "invalid-utf8",
        "POST",
        "/v1/analyze",
        "application/json",
        b'{"turns":[{"speaker":"customer","text":"\xff"}]}',
        400,
    ),
    ("deep-json", "POST", "/v1/analyze", "application/json", b'{"a":' * 2000 + b"1" + b"}" * 2000, 400),
    (
        "bad-conversation-id",
        "POST",
        "/v1/conversations/-abc/turns",
        "application/json",
        b'{"turns":[{"speaker":"customer","text":"a"}]}',
        422,
    ),
    ("wrong-method", "PUT", "/v1/analyze", "application/json", b"{}", 405),
)


# ---- pure helpers ------------------------------------------------------------------------------------


def compare(acked: dict[str, set[str]], stored: dict[str, list[str]]) -> tuple[int, int, int]:
    """``(lost, duplicated, stored but never acknowledged)`` turn ids.

    ``acked``: turn ids per conversation the service answered 200 for; ``stored``: the
    turn ids read back per conversation, in order (a conversation never stored is absent).
    Lost: acknowledged, not stored. Duplicated: stored more than once (each extra copy
    counts). A stored turn that was never acknowledged is fine (the answer was lost in
    the crash) and reported for information.
    """
    lost = duplicated = unacknowledged = 0
    for conversation in acked.keys() | stored.keys():
        ids = stored.get(conversation, [])
        counts = Counter(ids)
        duplicated += sum(n - 1 for n in counts.values())
        mine = acked.get(conversation, set())
        lost += len(mine - counts.keys())
        unacknowledged += len(counts.keys() - mine)
    return lost, duplicated, unacknowledged


def slug(name: str) -> str:
    """A scenario name as a piece of a conversation id (letters, digits and ``-`` only)."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def classify(status: int | None, seconds: float, deadline_s: float = ANSWER_DEADLINE_S) -> str:
    """One request during an outage: ``503_in_time``, ``hung`` (no answer, or later than the
    deadline), ``ok`` (2xx), or ``other_<status>``."""
    if status is None or seconds > deadline_s:
        return "hung"
    if status == 503:
        return "503_in_time"
    if 200 <= status < 300:
        return "ok"
    return f"other_{status}"


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The shared bad-input corpus (one JSON object a line), or the built-in list when it is absent.

    Each entry has ``name``, ``method``, ``path``, ``status`` and ``body`` (text) or
    ``body_hex``, optionally ``content_type`` and ``policy_file`` / ``reasons_file``
    (``{"missing": true}``, ``{"text": ...}`` or ``{"hex": ...}``: what the reloaded file holds).
    """
    if path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        {"name": n, "method": m, "path": p, "content_type": c, "body_hex": b.hex(), "status": s}
        for n, m, p, c, b, s in BUILTIN_BAD_INPUTS
    ]


def entry_body(entry: dict[str, Any]) -> bytes:
    """The raw request body of a corpus entry."""
    if "body_hex" in entry:
        return bytes.fromhex(entry["body_hex"])
    body = entry.get("body")
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else b""


def stored_page(body: dict[str, Any]) -> tuple[list[str], int | None]:
    """Turn ids of one ``GET /v1/conversations/{id}`` page and the ``after`` of the next (None: done).

    A service without paging (no ``next_after``) returns every turn at once.
    """
    ids = [str(turn.get("id")) for turn in body.get("turns", [])]
    following = body.get("next_after")
    return ids, following if isinstance(following, int) and ids else None


# ---- results -----------------------------------------------------------------------------------------


@dataclass
class Crash:
    """A kill -9 scenario."""

    scenario: str
    requests: int
    acknowledged: int
    in_flight_at_kill: int  # appends sent to the victim and not yet answered when it was killed
    unanswered: int  # transport errors (the kill) and non-200s, retried once after the restart
    retried_ok: int
    retried_already_stored: int  # retries the service answered as duplicates: stored, answer lost
    lost: int
    duplicated: int
    stored_unacknowledged: int
    status: dict[str, int]
    unavailable: int  # 503s: the restarted server answers them until its model is loaded (retryable)
    five_xx: int  # every other 5xx
    restart_s: float


@dataclass
class Outage:
    """Requests while Redis is unavailable."""

    scenario: str
    requests: int
    outcomes: dict[str, int]  # by ``classify``
    analyze_ok: int
    analyze_sent: int
    max_answer_s: float
    recovered_s: float | None  # from Redis back until an append is served again (None: never)


@dataclass
class Shed:
    """The 2x overload run."""

    offered_per_s: float
    sent: int
    status: dict[str, int]
    five_xx: int
    errors: int


@dataclass
class BadInputs:
    """The bad-input corpus."""

    source: str
    sent: int
    as_expected: int
    five_xx: int
    errors: int
    alive_after: bool
    mismatches: list[str] = field(default_factory=list)


@dataclass
class Webhooks:
    """Forged and replayed webhook deliveries."""

    forgeries: int
    forgeries_refused: int
    forgeries_accepted: list[str]
    replays: int
    replays_refused: int
    replays_accepted: list[str]  # deliveries let through more than once (or never)
    stored_extra: int  # turns stored beyond one per delivery (a replay that got through)
    five_xx: int
    notes: list[str] = field(default_factory=list)


# ---- drivers -----------------------------------------------------------------------------------------


class Ledger:
    """What the clients sent and what the service acknowledged."""

    def __init__(self) -> None:
        self.acked: dict[str, set[str]] = {}
        self.pending: dict[tuple[str, str], bytes] = {}  # (conversation, turn id) -> body, no 200 yet
        self.conversations: set[str] = set()
        self.status: Counter[str] = Counter()
        self.requests = 0
        self.in_flight: Counter[str] = Counter()  # by server URL

    def sent(self, conversation: str, turn: str, body: bytes) -> None:
        self.requests += 1
        self.conversations.add(conversation)
        self.pending[(conversation, turn)] = body

    def answered(self, conversation: str, turn: str, status: int | None) -> None:
        self.status[str(status) if status is not None else "error"] += 1
        if status == 200:
            self.acked.setdefault(conversation, set()).add(turn)
            self.pending.pop((conversation, turn), None)


async def _send(
    session: aiohttp.ClientSession, method: str, url: str | yarl.URL, **kwargs: Any
) -> tuple[int | None, bytes, float, dict[str, str]]:
    """``(status or None on a transport error/timeout, body, seconds, headers by lower-case name)``."""
    started = time.perf_counter()
    try:
        async with session.request(method, url, **kwargs) as reply:
            payload = await reply.read()
            headers = {name.lower(): value for name, value in reply.headers.items()}
            return reply.status, payload, time.perf_counter() - started, headers
    except (TimeoutError, aiohttp.ClientError):
        return None, b"", time.perf_counter() - started, {}


async def append_load(
    session: aiohttp.ClientSession,
    bases: Callable[[], Sequence[str]],
    ids: http.Ids,
    step: str,
    clients: int,
    seconds: float,
    ledger: Ledger,
    texts: Sequence[str],
) -> None:
    """``clients`` closed-loop one-turn appenders for ``seconds``, each over the servers ``bases()``."""
    stop_at = time.perf_counter() + seconds

    async def client(number: int) -> None:
        sequence = 0
        while time.perf_counter() < stop_at:
            conversation = ids.conversation(step, number, sequence // TURNS_PER_CONVERSATION)
            turn = ids.turn(step, number, sequence)
            text = texts[(number * 7919 + sequence) % len(texts)]
            body = json.dumps({"turns": [{"speaker": "customer", "text": text, "id": turn}]}).encode()
            servers = bases()
            base = servers[(number + sequence) % len(servers)]
            ledger.sent(conversation, turn, body)
            ledger.in_flight[base] += 1
            status, _, _, _ = await _send(
                session, "POST", f"{base}/v1/conversations/{conversation}/turns?turns=new", data=body
            )
            ledger.in_flight[base] -= 1
            ledger.answered(conversation, turn, status)
            sequence += 1
            if status is None or status >= 500:
                await asyncio.sleep(0.2)  # a dead server refuses at once: do not spin

    await asyncio.gather(*(client(n) for n in range(clients)))


async def read_back(
    session: aiohttp.ClientSession, base: str, conversations: Iterable[str]
) -> dict[str, list[str]]:
    """Every stored turn id of ``conversations``, page by page (unknown ones are absent)."""
    stored: dict[str, list[str]] = {}
    for conversation in sorted(conversations):
        after: int | None = -1
        ids: list[str] = []
        while after is not None:
            query = f"?after={after}&limit=1000" if after >= 0 else "?limit=1000"
            status, payload, _, _ = await _send(
                session, "GET", f"{base}/v1/conversations/{conversation}{query}"
            )
            if status == 404:
                break
            if status != 200:
                raise RuntimeError(f"reading {conversation} back: {status} {payload[:200]!r}")
            page, after = stored_page(json.loads(payload))
            ids += page
        if ids:
            stored[conversation] = ids
    return stored


async def retry_pending(
    session: aiohttp.ClientSession, base: str, ledger: Ledger, clients: int
) -> tuple[int, int]:
    """Send every unanswered append once more (same id and text, ``clients`` at a time).

    Returns the retries answered 200 and, of those, the ones the service reported as
    already stored (committed before the crash, only the answer was lost).
    """
    ok = already = 0
    gate = asyncio.Semaphore(clients)

    async def retry(conversation: str, turn: str, body: bytes) -> None:
        nonlocal ok, already
        async with gate:
            status, payload, _, _ = await _send(
                session, "POST", f"{base}/v1/conversations/{conversation}/turns?turns=new", data=body
            )
        if status == 200:
            ok += 1
            already += http.append_counts(payload)[1] > 0
            ledger.acked.setdefault(conversation, set()).add(turn)
            ledger.pending.pop((conversation, turn), None)

    await asyncio.gather(*(retry(c, t, b) for (c, t), b in list(ledger.pending.items())))
    return ok, already


def _kill9(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


async def crash_scenario(
    name: str,
    services: Sequence[http.ServiceProcess],
    victim: http.ServiceProcess,
    ids: http.Ids,
    args: argparse.Namespace,
    texts: Sequence[str],
) -> Crash:
    """Append load over ``services``; SIGKILL ``victim`` mid-run, restart it, retry, read back, compare."""
    ledger = Ledger()
    alive = list(services)
    step = slug(name)

    restart_s = 0.0
    in_flight = 0

    async def killer() -> None:
        nonlocal restart_s, in_flight
        await asyncio.sleep(args.kill_after_s)
        # Mid-append means with appends in flight on the victim: wait (briefly) until some are.
        deadline = time.monotonic() + 1.0
        while ledger.in_flight[victim.url] < KILL_IN_FLIGHT and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        in_flight = ledger.in_flight[victim.url]
        await asyncio.to_thread(_kill9, victim.process)
        if len(alive) > 1:
            alive.remove(victim)  # the clients' load balancer notices, as a real one would
        started = time.monotonic()
        victim.restart()
        await asyncio.to_thread(victim.wait_ready)
        restart_s = time.monotonic() - started
        if victim not in alive:
            alive.append(victim)

    async with http_session(victim.key) as session:
        await asyncio.gather(
            append_load(
                session, lambda: [a.url for a in alive], ids, step, args.clients, args.crash_s, ledger, texts
            ),
            killer(),
        )
        unanswered = len(ledger.pending)
        retried, already = await retry_pending(session, victim.url, ledger, args.clients)
        stored = await read_back(session, services[0].url, ledger.conversations)
    lost, duplicated, unacknowledged = compare(ledger.acked, stored)
    return Crash(
        scenario=name,
        requests=ledger.requests,
        acknowledged=sum(len(v) for v in ledger.acked.values()) - retried,
        in_flight_at_kill=in_flight,
        unanswered=unanswered,
        retried_ok=retried,
        retried_already_stored=already,
        lost=lost,
        duplicated=duplicated,
        stored_unacknowledged=unacknowledged,
        status=dict(ledger.status),
        unavailable=ledger.status.get("503", 0),
        five_xx=sum(n for s, n in ledger.status.items() if s.startswith("5") and s != "503"),
        restart_s=round(restart_s, 2),
    )


async def outage_scenario(
    name: str,
    service: http.ServiceProcess,
    ids: http.Ids,
    args: argparse.Namespace,
    texts: Sequence[str],
    break_redis: Callable[[], None],
    heal_redis: Callable[[], None],
) -> Outage:
    """Appends, GETs and analyzes while Redis is broken; then time to serve appends again once healed."""
    step = slug(name)
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    analyze_ok = analyze_sent = 0
    body = json.dumps({"turns": [{"speaker": "customer", "text": texts[0]}]}).encode()
    async with http_session(service.key, timeout_s=args.hang_timeout_s) as session:
        # A conversation that exists before the outage, for the GETs.
        known = ids.conversation(step, 0, 0)
        await _send(session, "POST", f"{service.url}/v1/conversations/{known}/turns", data=body)
        await asyncio.to_thread(break_redis)
        stop_at = time.perf_counter() + args.outage_s

        def append_request(number: int, sequence: int) -> tuple[str, str, bytes | None]:
            conversation = ids.conversation(step, number + 1, sequence)
            turn = {
                "speaker": "customer",
                "text": texts[sequence % len(texts)],
                "id": ids.turn(step, number, sequence),
            }
            url = f"{service.url}/v1/conversations/{conversation}/turns"
            return "POST", url, json.dumps({"turns": [turn]}).encode()

        async def client(number: int) -> None:
            """Roles by number: two appenders, one reader of the known conversation, one analyzer."""
            nonlocal slowest, analyze_ok, analyze_sent
            role = number % 4
            sequence = 0
            while time.perf_counter() < stop_at:
                if role == 3:
                    status, _, _, _ = await _send(session, "POST", f"{service.url}/v1/analyze", data=body)
                    analyze_sent += 1
                    analyze_ok += status == 200
                else:
                    method, url, data = (
                        append_request(number, sequence)
                        if role < 2
                        else ("GET", f"{service.url}/v1/conversations/{known}", None)
                    )
                    status, _, seconds, _ = await _send(session, method, url, data=data)
                    outcomes[classify(status, seconds)] += 1
                    slowest = max(slowest, seconds)
                sequence += 1

        await asyncio.gather(*(client(n) for n in range(args.outage_clients)))
        await asyncio.to_thread(heal_redis)
        healed = time.monotonic()
        recovered: float | None = None
        probe = 0
        while time.monotonic() - healed < args.recover_timeout_s:
            conversation = ids.conversation(step + "-recover", 0, probe)
            status, _, _, _ = await _send(
                session, "POST", f"{service.url}/v1/conversations/{conversation}/turns", data=body
            )
            probe += 1
            if status == 200:
                recovered = round(time.monotonic() - healed, 2)
                break
            await asyncio.sleep(0.1)
    return Outage(
        scenario=name,
        requests=sum(outcomes.values()),
        outcomes=dict(outcomes),
        analyze_ok=analyze_ok,
        analyze_sent=analyze_sent,
        max_answer_s=round(slowest, 2),
        recovered_s=recovered,
    )


async def overload_scenario(service: http.ServiceProcess, ids: http.Ids, args: argparse.Namespace) -> Shed:
    """Measure saturation closed-loop, then offer twice that open-loop; count 5xx."""
    workloads = http.Workloads(ids)
    async with http_session(service.key) as session:
        _, statuses, _, _ = await http.closed_loop(
            session, service.url, workloads.get("append-1", "sat"), 64, args.saturation_s, 0.5
        )
        saturation = statuses.get("200", 0) / args.saturation_s
        rate = max(50.0, 2 * saturation)
        results, errors, _, _ = await http.open_loop(
            session, service.url, workloads.get("append-1", "overload"), rate, args.overload_s
        )
    status = Counter(str(s) for s, _ in results)
    return Shed(
        offered_per_s=round(rate, 1),
        sent=len(results) + errors,
        status=dict(status),
        five_xx=sum(n for s, n in status.items() if s.startswith("5")),
        errors=errors,
    )


async def bad_input_scenario(service: http.ServiceProcess, files: dict[str, Path]) -> BadInputs:
    """Send every corpus entry; count those answered with their expected status and any 5xx."""
    entries = load_corpus()
    as_expected = five_xx = errors = 0
    mismatches: list[str] = []
    headers = {"Authorization": f"Bearer {service.key}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:
        keep = json.dumps({"turns": KEPT_TURNS}).encode()
        await _send(
            session,
            "POST",
            f"{service.url}/v1/conversations/{KEEP_CONVERSATION}/turns",
            data=keep,
            headers={"Content-Type": "application/json"},
        )
        for entry in entries:
            restore = _prepare_files(entry, files)
            try:
                extra = {"Content-Type": entry["content_type"]} if entry.get("content_type") else {}
                status, _, _, _ = await _send(
                    session,
                    entry["method"],
                    yarl.URL(service.url + entry["path"], encoded=True),
                    data=entry_body(entry),
                    headers=extra,
                    skip_auto_headers=["Content-Type"],
                )
            finally:
                restore()
            if status is None:
                errors += 1
            elif status >= 500:
                five_xx += 1
            if status == entry["status"]:
                as_expected += 1
            else:
                mismatches.append(f"{entry['name']}: expected {entry['status']}, got {status}")
    return BadInputs(
        source=str(CORPUS.relative_to(ROOT)) if CORPUS.exists() else "built-in list",
        sent=len(entries),
        as_expected=as_expected,
        five_xx=five_xx,
        errors=errors,
        alive_after=_ready(service.url),
        mismatches=mismatches,
    )


def _prepare_files(entry: dict[str, Any], files: dict[str, Path]) -> Callable[[], None]:
    """Put the policy/reasons file content an entry asks for in place; returns the undo."""
    undo: list[tuple[Path, bytes]] = []
    for key in ("policy_file", "reasons_file"):
        spec = entry.get(key)
        if not spec:
            continue
        path = files[key]
        original = path.read_bytes()
        if spec.get("missing"):
            path.unlink()
        elif "hex" in spec:
            path.write_bytes(bytes.fromhex(spec["hex"]))
        else:
            path.write_text(spec.get("text", ""), encoding="utf-8")
        undo.append((path, original))

    def restore() -> None:
        for path, original in undo:
            path.write_bytes(original)

    return restore


def _ready(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=5) as reply:
        return bool(reply.status == 200)
    return False


WEBHOOK_SECRET = "bench-generic-secret"
CHATWOOT_SECRET = "bench-chatwoot-secret"
TWILIO_TOKEN = "bench-twilio-token"


def webhook_env(base_url: str) -> dict[str, str]:
    """Settings that turn the generic, Chatwoot and Twilio webhooks on with known secrets."""
    return {
        "SWITCHBOARD_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SWITCHBOARD_CHATWOOT_SECRET": CHATWOOT_SECRET,
        "SWITCHBOARD_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SWITCHBOARD_PUBLIC_BASE_URL": base_url,
    }


def _generic(conversation: str, turn: str) -> bytes:
    return json.dumps(
        {
            "conversation_id": conversation,
            "turns": [{"speaker": "customer", "text": "my card was charged twice", "id": turn}],
        }
    ).encode()


def _chatwoot(conversation: int, message: int) -> bytes:
    return json.dumps(
        {
            "event": "message_created",
            "message_type": "incoming",
            "private": False,
            "content": "my card was charged twice",
            "id": message,
            "conversation": {"id": conversation},
            "account": {"id": 1},
        }
    ).encode()


def _twilio(call: str, sequence: int, text: str = "my card was charged twice") -> list[tuple[str, str]]:
    return [
        ("TranscriptionEvent", "transcription-content"),
        ("Final", "true"),
        ("CallSid", call),
        ("SequenceId", str(sequence)),
        ("Track", "inbound_track"),
        ("TranscriptionData", json.dumps({"transcript": text, "confidence": 0.93})),
    ]


Delivery = tuple[str, bytes, dict[str, str]]  # path, body, headers


def forgeries(base_url: str, nonce: str, now: int) -> list[tuple[str, Delivery]]:
    """Deliveries that must all be refused (401/403): each forges or breaks one part of a signature."""
    generic = _generic(f"forged-{nonce}", "t1")
    other = _generic(f"forged-{nonce}", "t2")
    json_type = {"Content-Type": "application/json"}

    def signed(secret: str, stamp: int, body: bytes) -> dict[str, str]:
        return {
            **json_type,
            "X-Switchboard-Timestamp": str(stamp),
            "X-Switchboard-Signature": sign_timestamped(secret, stamp, body),
        }

    def chatwoot(secret: str, stamp: int, body: bytes) -> dict[str, str]:
        return {
            **json_type,
            "X-Chatwoot-Timestamp": str(stamp),
            "X-Chatwoot-Signature": sign_timestamped(secret, stamp, body),
        }

    cw = _chatwoot(900_000 + now % 1000, 1)
    twilio_url = f"{base_url}/v1/webhooks/twilio/voice"
    form = _twilio(f"CAforged{nonce}", 1)
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    twilio_sig = twilio_signature(twilio_url, form, TWILIO_TOKEN)
    tampered = _twilio(f"CAforged{nonce}", 1, "refund me a million")
    return [
        ("generic: no signature", ("/v1/webhooks/generic", generic, json_type)),
        ("generic: wrong secret", ("/v1/webhooks/generic", generic, signed("guess", now, generic))),
        ("generic: tampered body", ("/v1/webhooks/generic", other, signed(WEBHOOK_SECRET, now, generic))),
        (
            "generic: stale timestamp",
            ("/v1/webhooks/generic", generic, signed(WEBHOOK_SECRET, now - 3600, generic)),
        ),
        (
            "generic: future timestamp",
            ("/v1/webhooks/generic", generic, signed(WEBHOOK_SECRET, now + 3600, generic)),
        ),
        (
            "generic: signature for another timestamp",
            (
                "/v1/webhooks/generic",
                generic,
                {**signed(WEBHOOK_SECRET, now, generic), "X-Switchboard-Timestamp": str(now - 1)},
            ),
        ),
        (
            "generic: sha1 scheme",
            (
                "/v1/webhooks/generic",
                generic,
                {**signed(WEBHOOK_SECRET, now, generic), "X-Switchboard-Signature": "sha1=00"},
            ),
        ),
        ("chatwoot: no signature", ("/v1/webhooks/chatwoot", cw, json_type)),
        ("chatwoot: wrong secret", ("/v1/webhooks/chatwoot", cw, chatwoot("guess", now, cw))),
        ("chatwoot: generic secret", ("/v1/webhooks/chatwoot", cw, chatwoot(WEBHOOK_SECRET, now, cw))),
        (
            "chatwoot: stale timestamp",
            ("/v1/webhooks/chatwoot", cw, chatwoot(CHATWOOT_SECRET, now - 3600, cw)),
        ),
        ("twilio: no signature", ("/v1/webhooks/twilio/voice", urlencode(form).encode(), form_type)),
        (
            "twilio: wrong token",
            (
                "/v1/webhooks/twilio/voice",
                urlencode(form).encode(),
                {**form_type, "X-Twilio-Signature": twilio_signature(twilio_url, form, "guess")},
            ),
        ),
        (
            "twilio: tampered transcript",
            (
                "/v1/webhooks/twilio/voice",
                urlencode(tampered).encode(),
                {**form_type, "X-Twilio-Signature": twilio_sig},
            ),
        ),
        (
            "twilio: signed for another URL",
            (
                "/v1/webhooks/twilio/voice",
                urlencode(form).encode(),
                {
                    **form_type,
                    "X-Twilio-Signature": twilio_signature(base_url + "/elsewhere", form, TWILIO_TOKEN),
                },
            ),
        ),
    ]


async def webhook_scenario(service: http.ServiceProcess, ids: http.Ids) -> Webhooks:
    """Forgeries must be refused; replays (sequential and 8 concurrent copies) must not append twice."""
    now = int(time.time())
    forged = forgeries(service.url, ids.nonce, now)
    refused = five_xx = 0
    accepted: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for name, (path, body, headers) in forged:
            status, _, _, _ = await _send(session, "POST", service.url + path, data=body, headers=headers)
            refused += status in (401, 403)
            five_xx += status is not None and status >= 500
            if status is None or 200 <= status < 300:
                accepted.append(f"{name}: {status}")

        replays = replays_refused = 0
        replays_accepted: list[str] = []
        notes: list[str] = []
        conversations: list[str] = []
        for copies in (2, 8):
            generic_conv = ids.conversation(f"replay{copies}", 0, 0)
            generic = _generic(generic_conv, "t1")
            generic_headers = {
                "Content-Type": "application/json",
                "X-Switchboard-Timestamp": str(now),
                "X-Switchboard-Signature": sign_timestamped(WEBHOOK_SECRET, now, generic),
            }
            chat_number = (int(ids.nonce, 16) % 100_000) * 10 + copies
            chat = _chatwoot(chat_number, 1)
            chat_headers = {
                "Content-Type": "application/json",
                "X-Chatwoot-Timestamp": str(now),
                "X-Chatwoot-Signature": sign_timestamped(CHATWOOT_SECRET, now, chat),
            }
            call = f"CA{ids.nonce}{copies}"
            form = _twilio(call, 1)
            form_headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(
                    f"{service.url}/v1/webhooks/twilio/voice", form, TWILIO_TOKEN
                ),
            }
            deliveries = [
                ("generic", "/v1/webhooks/generic", generic, generic_headers),
                ("chatwoot", "/v1/webhooks/chatwoot", chat, chat_headers),
                ("twilio", "/v1/webhooks/twilio/voice", urlencode(form).encode(), form_headers),
            ]
            conversations += [generic_conv, f"chatwoot:1:{chat_number}", call]
            for kind, path, body, headers in deliveries:
                if copies == 2:  # one after the other
                    answers = [
                        await _send(session, "POST", service.url + path, data=body, headers=headers)
                        for _ in range(copies)
                    ]
                else:  # at once: the replay guard must be atomic
                    answers = await asyncio.gather(
                        *(
                            _send(session, "POST", service.url + path, data=body, headers=headers)
                            for _ in range(copies)
                        )
                    )
                processed = sum(_processed(a) for a in answers)
                replays += copies - 1
                replays_refused += copies - processed
                five_xx += sum(1 for a in answers if a[0] is not None and a[0] >= 500)
                answered = Counter(f"{a[0]}/{a[3].get(OUTCOME, '-')}" for a in answers)
                # Twilio signs no timestamp and its guard records a delivery once processed, so copies
                # racing each other may all pass it (documented); the turn id keeps the store single.
                racing_twilio = kind == "twilio" and copies > 2
                if processed == 0 or (processed > 1 and not racing_twilio):
                    replays_accepted.append(f"{kind} x{copies}: {processed} let through ({dict(answered)})")
                elif processed > 1:
                    notes.append(f"{kind} x{copies}: {processed} let through, deduplicated by turn id")
    async with http_session(service.key) as session:
        stored = await read_back(session, service.url, conversations)
    extra = sum(max(0, len(turns) - 1) for turns in stored.values())
    return Webhooks(
        forgeries=len(forged),
        forgeries_refused=refused,
        forgeries_accepted=accepted,
        replays=replays,
        replays_refused=replays_refused,
        replays_accepted=replays_accepted,
        stored_extra=extra,
        five_xx=five_xx,
        notes=notes,
    )


def _processed(answer: tuple[int | None, bytes, float, dict[str, str]]) -> bool:
    """A webhook delivery the service let through its replay guard (2xx, not answered ``duplicate``)."""
    status, _, _, headers = answer
    return status is not None and 200 <= status < 300 and headers.get(OUTCOME) != "duplicate"


# ---- Redis --------------------------------------------------------------------------------------------


class RedisServer:
    """Our own ``redis-server`` on a spare port, without persistence."""

    def __init__(self, log: Path) -> None:
        self.port = http.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        with self.log.open("ab") as handle:
            process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket_to(self.port) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start; see {self.log}")

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill it (a crashed or stopped Redis, data gone)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()

    def start(self) -> None:
        self.process = self._spawn()


def socket_to(port: int) -> Any:
    """A connected TCP socket to 127.0.0.1:``port`` (1 s timeout)."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=1)
    return contextlib.closing(sock)


# ---- the run -------------------------------------------------------------------------------------------


def http_session(key: str, timeout_s: float = 30.0) -> aiohttp.ClientSession:
    """A client session with the API key and a JSON content type."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return aiohttp.ClientSession(
        headers=headers,
        connector=aiohttp.TCPConnector(limit=1024),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


async def run(args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """Every scenario, in order; servers and Redis are always stopped."""
    ids = http.Ids.new()
    texts = http.Workloads(ids).texts
    started: list[http.ServiceProcess] = []
    redis: RedisServer | None = None
    report: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-faults-"))
    files = {"policy_file": workdir / "policy.toml", "reasons_file": workdir / "reasons.toml"}
    files["policy_file"].write_text(default_policy_text(), encoding="utf-8")
    files["reasons_file"].write_text(default_reasons_text(), encoding="utf-8")

    def launch(env: dict[str, str], port: int | None = None, key: str | None = None) -> http.ServiceProcess:
        service = http.ServiceProcess(args.pack, 1, log, env=env, port=port, key=key)
        started.append(service)
        service.wait_ready()
        return service

    try:
        port = http.free_port()
        sqlite = launch(
            {
                **webhook_env(f"http://127.0.0.1:{port}"),
                "SWITCHBOARD_POLICY": str(files["policy_file"]),
                "SWITCHBOARD_REASONS": str(files["reasons_file"]),
                **CORPUS_LIMITS,
            },
            port=port,
        )
        crash = await crash_scenario("kill -9 (SQLite)", [sqlite], sqlite, ids, args, texts)
        report["kill_sqlite"] = asdict(crash)
        print(_crash_row(crash), flush=True)
        shed = await overload_scenario(sqlite, ids, args)
        report["overload"] = asdict(shed)
        print(_shed_row(shed), flush=True)
        bad = await bad_input_scenario(sqlite, files)
        report["bad_inputs"] = asdict(bad)
        print(_bad_row(bad), flush=True)
        hooks = await webhook_scenario(sqlite, ids)
        report["webhooks"] = asdict(hooks)
        print(_webhook_row(hooks), flush=True)
        await asyncio.to_thread(sqlite.stop)

        if shutil.which("redis-server") is None:
            report["redis"] = {"skipped": "redis-server is not installed"}
            return report
        redis = RedisServer(log)
        env = {"SWITCHBOARD_STORE": redis.url, "SWITCHBOARD_OUTBOX": redis.url}
        first = launch(env)
        second = launch(env, key=first.key)
        crash = await crash_scenario("kill -9 (Redis, 2 procs)", [first, second], first, ids, args, texts)
        report["kill_redis"] = asdict(crash)
        print(_crash_row(crash), flush=True)
        frozen = await outage_scenario(
            "Redis frozen (SIGSTOP)", second, ids, args, texts, redis.freeze, redis.thaw
        )
        report["redis_frozen"] = asdict(frozen)
        print(_outage_row(frozen), flush=True)
        stopped = await outage_scenario("Redis stopped", second, ids, args, texts, redis.stop, redis.start)
        report["redis_stopped"] = asdict(stopped)
        print(_outage_row(stopped), flush=True)
    finally:
        for service in started:
            service.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _crash_row(c: Crash) -> str:
    return (
        f"{c.scenario:<28} {c.requests:>6} sent, {c.acknowledged:>5} acked, {c.unanswered:>3} unanswered "
        f"({c.retried_ok} retried ok, {c.retried_already_stored} already stored): lost {c.lost}, "
        f"duplicated {c.duplicated}, 503 {c.unavailable}, other 5xx {c.five_xx}; restart {c.restart_s:.1f} s"
    )


def _outage_row(o: Outage) -> str:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(o.outcomes.items()))
    return (
        f"{o.scenario:<28} {o.requests:>6} sent: {outcomes}; slowest answer {o.max_answer_s:.2f} s; "
        f"/v1/analyze {o.analyze_ok}/{o.analyze_sent} ok; appends served again {o.recovered_s} s after Redis"
    )


def _shed_row(s: Shed) -> str:
    return (
        f"{'overload 2x':<28} {s.sent:>6} sent at {s.offered_per_s:.0f}/s: {s.status}; 5xx {s.five_xx}, "
        f"transport errors {s.errors}"
    )


def _bad_row(b: BadInputs) -> str:
    return (
        f"{'bad inputs':<28} {b.sent:>6} sent ({b.source}): {b.as_expected} as expected, "
        f"{len(b.mismatches)} other, 5xx {b.five_xx}, errors {b.errors}; alive after: {b.alive_after}"
    )


def _webhook_row(w: Webhooks) -> str:
    return (
        f"{'webhook forgeries':<28} {w.forgeries:>6} sent: {w.forgeries_refused} refused (401/403), "
        f"{len(w.forgeries_accepted)} accepted\n"
        f"{'webhook replays':<28} {w.replays:>6} sent: {w.replays_refused} refused or deduplicated, "
        f"{len(w.replays_accepted)} let through more than once, {w.stored_extra} extra turns stored; "
        f"5xx {w.five_xx}"
    )


def text_report(report: dict[str, Any]) -> str:
    """The commit-ready summary (``bench/results/faults.txt``)."""
    meta = report["meta"]
    lines = [
        f"python -m bench faults ({meta['date']}, {meta['cpus']} CPUs, load average before "
        f"{meta['load_average_before']}, run {meta['run_s']:.0f} s)",
        "",
        f"{'scenario':<28} {'sent':>6} {'acked':>6} {'lost':>5} {'dup':>4} {'503':>4} {'5xx':>4}  notes",
    ]
    for key in ("kill_sqlite", "kill_redis"):
        if key in report:
            c = report[key]
            lines.append(
                f"{c['scenario']:<28} {c['requests']:>6} {c['acknowledged']:>6} {c['lost']:>5} "
                f"{c['duplicated']:>4} {c['unavailable']:>4} {c['five_xx']:>4}  "
                f"{c['in_flight_at_kill']} in flight at the kill, "
                f"{c['unanswered']} unanswered (or 503) in all, "
                f"{c['retried_ok']} ok on retry ({c['retried_already_stored']} of them already stored), "
                f"{c['stored_unacknowledged']} stored without any ack; restart {c['restart_s']:.1f} s"
            )
    lines += ["", f"{'Redis outage':<28} {'sent':>6} {'503<=2s':>8} {'hung':>5} {'other':>6}  notes"]
    for key in ("redis_frozen", "redis_stopped"):
        if key in report:
            o = report[key]
            other = sum(v for k, v in o["outcomes"].items() if k not in ("503_in_time", "hung"))
            lines.append(
                f"{o['scenario']:<28} {o['requests']:>6} {o['outcomes'].get('503_in_time', 0):>8} "
                f"{o['outcomes'].get('hung', 0):>5} {other:>6}  slowest {o['max_answer_s']:.2f} s; "
                f"/v1/analyze {o['analyze_ok']}/{o['analyze_sent']} answered 200; appends served "
                f"{o['recovered_s']} s after Redis came back; {o['outcomes']}"
            )
    if "overload" in report:
        s = report["overload"]
        lines += [
            "",
            f"overload 2x: {s['sent']} appends offered at {s['offered_per_s']:.0f}/s: {s['status']}; "
            f"5xx {s['five_xx']}, transport errors {s['errors']}",
        ]
    if "bad_inputs" in report:
        b = report["bad_inputs"]
        lines += [
            f"bad inputs ({b['source']}): {b['sent']} sent, {b['as_expected']} answered with the expected "
            f"status, 5xx {b['five_xx']}, transport errors {b['errors']}; "
            f"service alive after: {b['alive_after']}",
        ]
        lines += [f"  mismatch: {m}" for m in b["mismatches"]]
    if "webhooks" in report:
        w = report["webhooks"]
        lines += [
            f"webhook forgeries: {w['forgeries']} sent, {w['forgeries_refused']} refused with 401/403, "
            f"{len(w['forgeries_accepted'])} accepted",
        ]
        lines += [f"  accepted: {m}" for m in w["forgeries_accepted"]]
        lines += [
            f"webhook replays: {w['replays']} replayed copies, {w['replays_refused']} refused or "
            f"deduplicated, {len(w['replays_accepted'])} deliveries let through more than once, "
            f"{w['stored_extra']} extra turns stored; 5xx {w['five_xx']}",
        ]
        lines += [f"  replayed: {m}" for m in w["replays_accepted"]]
        lines += [f"  note: {m}" for m in w.get("notes", [])]
    if isinstance(report.get("redis"), dict) and "skipped" in report["redis"]:
        lines.append(f"Redis scenarios skipped: {report['redis']['skipped']}")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (defaults keep the whole run well under 5 minutes on 2 cores)."""
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, help="model pack (default: the bundled default pack)")
    parser.add_argument("--clients", type=int, default=16, help="appending clients in the kill -9 scenarios")
    parser.add_argument(
        "--crash-s", type=float, default=6.0, help="seconds of append load per kill -9 scenario"
    )
    parser.add_argument(
        "--kill-after-s", type=float, default=2.0, help="seconds into the load the kill comes"
    )
    parser.add_argument("--outage-s", type=float, default=4.0, help="seconds of requests per Redis outage")
    parser.add_argument("--outage-clients", type=int, default=8)
    parser.add_argument("--hang-timeout-s", type=float, default=8.0, help="client timeout during outages")
    parser.add_argument("--recover-timeout-s", type=float, default=30.0)
    parser.add_argument("--saturation-s", type=float, default=3.0)
    parser.add_argument("--overload-s", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_TXT, help="text summary")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="JSON results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every scenario; 1 when anything was lost, duplicated, answered 5xx, hung or accepted forged."""
    args = parse_args(argv)
    load_before = http.load_average()
    log = Path(tempfile.mkstemp(prefix="switchboard-faults-", suffix=".log")[1])
    print(f"logs: {log}", flush=True)
    started = time.monotonic()
    report = _run_loop(run(args, log))
    report["meta"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": http.load_average(),
        "run_s": round(time.monotonic() - started, 1),
        "answer_deadline_s": ANSWER_DEADLINE_S,
    }
    report["failures"] = failures(report)
    text = text_report(report)
    if report["failures"]:
        text += "\nFAILED: " + "; ".join(report["failures"]) + "\n"
    print("\n" + text)
    for path, content in ((args.out, text), (args.json, json.dumps(report, indent=2) + "\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    print(f"wrote {args.out} and {args.json}")
    return 1 if report["failures"] else 0


def failures(report: dict[str, Any]) -> list[str]:
    """What the issue says must not happen, found in ``report`` (empty: none)."""
    found = []
    for key in ("kill_sqlite", "kill_redis"):
        c = report.get(key)
        if c and (c["lost"] or c["duplicated"] or c["five_xx"]):
            found.append(
                f"{c['scenario']}: lost {c['lost']}, duplicated {c['duplicated']}, 5xx {c['five_xx']}"
            )
    for key in ("redis_frozen", "redis_stopped"):
        o = report.get(key)
        if o:
            if o["outcomes"].get("hung"):
                found.append(
                    f"{o['scenario']}: {o['outcomes']['hung']} requests hung past {ANSWER_DEADLINE_S:g} s"
                )
            if o["analyze_ok"] < o["analyze_sent"]:
                found.append(f"{o['scenario']}: /v1/analyze {o['analyze_ok']}/{o['analyze_sent']}")
            if o["recovered_s"] is None:
                found.append(f"{o['scenario']}: appends not served again after Redis came back")
    for key in ("overload", "bad_inputs"):
        if report.get(key, {}).get("five_xx"):
            found.append(f"{key}: {report[key]['five_xx']} 5xx")
    w = report.get("webhooks")
    if w:
        if w["forgeries_accepted"]:
            found.append(f"webhook forgeries accepted: {len(w['forgeries_accepted'])}")
        if w["replays_accepted"] or w["stored_extra"]:
            found.append(
                f"webhook replays processed: {len(w['replays_accepted'])}, extra turns {w['stored_extra']}"
            )
        if w["five_xx"]:
            found.append(f"webhooks: {w['five_xx']} 5xx")
    return found


def _run_loop(coro: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = http.run_loop(coro)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
