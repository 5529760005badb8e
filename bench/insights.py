"""``python -m bench insights``: how fast ``GET /v1/insights`` answers over N conversations.

Fills a fresh counter store (the SQLite file of a fresh data dir, or a fresh Redis prefix)
with ``--conversations`` conversations with outcomes spread over the last 24 hours, 8 queues,
12 contact-reason categories and a 3-arm experiment, exactly as the service's listeners would
have written them, then times ``GET /v1/insights?window=24h&by=...`` and
``GET /v1/insights/experiments`` through the real app (in-process ASGI, no network), and
writes p50/p95/max per query. Exit status 1 when a p95 exceeds ``--budget-ms`` (100).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from routing.insights import Facts, Outcome
from service.insights import InsightsStore, open_insights, outcome_update

QUERIES = (
    ("by=queue", "/v1/insights?window=24h&by=queue"),
    ("by=category", "/v1/insights?window=24h&by=category"),
    ("by=variant", "/v1/insights?window=24h&by=variant"),
    ("by=all", "/v1/insights?window=24h"),
    ("experiments", "/v1/insights/experiments?window=24h"),
)


async def fill(store: InsightsStore, conversations: int, seed: int) -> float:
    """Record ``conversations`` conversations with outcomes; return the seconds it took."""
    rng = random.Random(seed)
    hour = int(time.time() // 3600) * 3600
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        facts = Facts(
            bucket=hour - rng.randrange(24) * 3600,
            queue=f"queue-{rng.randrange(8)}",
            category=f"category-{rng.randrange(12)}",
            variant=f"bench/{rng.choice(['control', 'holdout', 'eager'])}",
            route=rng.choice(["self_serve_bot", "specialist", "retention_human"]),
            cause=rng.choice([None, "rule:vip", "guardrail:human_request"]),
            bot_loop=rng.random() < 0.05,
            repeat_contact=rng.random() < 0.1,
            negative_last=rng.random() < 0.2,
            closed=True,
        )
        outcome = Outcome(
            resolved=rng.random() < 0.6,
            abandoned=rng.random() < 0.05,
            csat=rng.randint(1, 5),
            handle_time_s=rng.uniform(30, 900),
            recontact_within_days=rng.choice([None, None, 3]),
        )
        async with gate:
            await store.update(f"bench-{i}", outcome_update(1, facts, outcome))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(conversations)))
    return time.perf_counter() - started


def run(store_url: str, data_dir: Path, conversations: int, repeats: int, seed: int) -> dict[str, Any]:
    """Fill, then time every query ``repeats`` times through the app."""
    from litestar.testing import TestClient

    from service.app import create_app
    from service.settings import Settings

    async def prefill() -> float:
        store = open_insights(store_url)
        try:
            return await fill(store, conversations, seed)
        finally:
            await store.close()

    fill_s = asyncio.run(prefill())
    env = {
        **os.environ,
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "SWITCHBOARD_STORE": store_url,
        "SWITCHBOARD_RATE_LIMIT": "0",
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
    }
    results: dict[str, Any] = {}
    with TestClient(create_app(Settings.from_env(env))) as client:
        for name, path in QUERIES:
            client.get(path)  # warm: first request builds Litestar's handler caches
            samples = []
            for _ in range(repeats):
                started = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            samples.sort()
            results[name] = {
                "p50_ms": round(statistics.median(samples), 2),
                "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 2),
                "max_ms": round(samples[-1], 2),
            }
        total = client.get("/v1/insights?window=24h").json()["total"]
    return {
        "store": store_url.split(":", 1)[0],
        "conversations": conversations,
        "counted": total["conversations"],
        "fill_s": round(fill_s, 2),
        "repeats": repeats,
        "queries": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry (``python -m bench insights --help``)."""
    parser = argparse.ArgumentParser(prog="python -m bench insights", description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--budget-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-insights-") as folder:
        data_dir = Path(folder) / "var"
        if args.store == "sqlite":
            url = f"sqlite:///{data_dir / 'switchboard.sqlite3'}"
        else:
            separator = "&" if "?" in args.redis_url else "?"
            url = f"{args.redis_url}{separator}prefix=bench-insights-{uuid.uuid4().hex[:8]}:"
        try:
            result = run(url, data_dir, args.conversations, args.repeats, args.seed)
        finally:
            if args.store == "redis":
                asyncio.run(_drop_prefix(url))
    result["budget_ms"] = args.budget_ms
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    over = [name for name, q in result["queries"].items() if q["p95_ms"] > args.budget_ms]
    if over:
        print(f"over budget ({args.budget_ms} ms p95): {', '.join(over)}")
        return 1
    return 0


async def _drop_prefix(url: str) -> None:
    """Delete the bench's keys from a shared Redis."""
    from service.redis_conn import open_redis

    conn = open_redis(url)
    try:
        keys = [key async for key in conn.client.scan_iter(match=f"{conn.prefix}*")]
        for start in range(0, len(keys), 500):
            await conn.client.delete(*keys[start : start + 500])
    finally:
        await conn.aclose()
