"""``switchboard slo rules``: a Prometheus alert-rule file from the policy's friction SLOs.

``switchboard slo rules --policy policy.toml > alerts.yaml`` prints one rule per SLO alert tier
(``routing.slo.alert_rules``) on the ``switchboard_slo_burn_rate`` gauges the service exports.
Without ``--policy``: ``SWITCHBOARD_POLICY``, else the bundled default policy. Exit codes as
for every ``switchboard`` command: 0 ok, 1 an invalid policy (every problem printed), 2 a file
that cannot be read or a bad flag.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from routing.errors import PolicyError
from routing.policy import default_policy_text
from routing.slo import alert_rules_yaml
from service.policy_source import validate_policy_text
from service.settings import Settings

_DURATION = re.compile(r"^[0-9]+[smhd]$")


def add_slo_parser(sub: Any) -> None:
    """Add ``slo rules`` to the subcommands."""
    slo = sub.add_parser("slo", help="friction SLOs: Prometheus alert rules from the policy's [[slos]]")
    commands = slo.add_subparsers(dest="slo_command", required=True)
    rules = commands.add_parser(
        "rules",
        help="print a Prometheus alert-rule file (YAML) for the policy's SLOs",
        description="One multi-window burn-rate alert per SLO tier on switchboard_slo_burn_rate, "
        "for Prometheus' rule_files. A policy without [[slos]] gives an empty rule group.",
    )
    rules.add_argument(
        "--policy", type=Path, help="policy TOML (default: SWITCHBOARD_POLICY, else the bundled policy)"
    )
    rules.add_argument(
        "--for", dest="for_", type=_duration, default="2m", help="the rules' `for` duration (default 2m)"
    )
    rules.add_argument("--out", type=Path, help="write to this file instead of stdout")
    rules.set_defaults(handler=run_rules)


def _duration(text: str) -> str:
    if not _DURATION.match(text):
        raise argparse.ArgumentTypeError("must be a Prometheus duration such as 30s, 2m or 1h")
    return text


def run_rules(args: argparse.Namespace) -> int:
    """Validate the policy (with the configured custom reasons) and print its alert rules."""
    from service.reasons_cli import load_reason_set

    settings = Settings.from_env({**os.environ, "SWITCHBOARD_AUTH_DISABLED": "true"})
    path: Path | None = args.policy or settings.policy_path
    try:
        text = path.read_text(encoding="utf-8") if path is not None else default_policy_text()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    name = str(path) if path is not None else "default policy"
    try:
        policy = validate_policy_text(text, load_reason_set(settings))
    except PolicyError as exc:
        print(f"{name}: invalid policy", file=sys.stderr)
        for message in exc.errors:
            print(f"  - {message}", file=sys.stderr)
        return 1
    output = alert_rules_yaml(policy.slos, for_=args.for_)
    if args.out is None:
        sys.stdout.write(output)
        return 0
    try:
        args.out.write_text(output, encoding="utf-8")
    except OSError as exc:
        print(f"{args.out}: cannot write ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(policy.slos)} SLOs", file=sys.stderr)
    return 0
