"""``switchboard slo rules``: Prometheus alert rules from the policy's ``[[slos]]``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from routing.policy import default_policy_text
from service.cli import main

SLOS = """
[[slos]]
id = "negative-exits"
objective = "negative_exits <= 0.15"
window = "1h"

[[slos]]
id = "containment"
metric = "containment_rate"
min = 0.50
window = "24h"

[[slos]]
id = "bot-loops"
metric = "bot_loop_rate"
max = 0.03
window = "1h"

[[slos]]
id = "repeat-contacts"
metric = "repeat_contact_rate"
max = 0.10
window = "7d"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_POLICY", raising=False)


def write_policy(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(default_policy_text() + "\n" + extra, encoding="utf-8")
    return path


def test_rules_are_prometheus_rule_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(tmp_path, SLOS)
    assert main(["slo", "rules", "--policy", str(policy)]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    (group,) = document["groups"]
    rules = group["rules"]
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule)
        assert rule["for"] == "2m" and rule["labels"]["severity"] in ("page", "ticket")
        assert "switchboard_slo_burn_rate" in rule["expr"]
    by_slo: dict[str, int] = {}
    for rule in rules:
        by_slo[rule["labels"]["slo"]] = by_slo.get(rule["labels"]["slo"], 0) + 1
    # 15%: 6x and 1x; 50% minimum: 1x only; 3%: all three; 10%: 6x and 1x.
    assert by_slo == {"negative-exits": 2, "containment": 1, "bot-loops": 3, "repeat-contacts": 2}


def test_out_file_and_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(tmp_path, SLOS)
    out = tmp_path / "alerts.yaml"
    assert main(["slo", "rules", "--policy", str(policy), "--for", "5m", "--out", str(out)]) == 0
    assert capsys.readouterr().err.strip() == f"{out}: 4 SLOs"
    rules = yaml.safe_load(out.read_text(encoding="utf-8"))["groups"][0]["rules"]
    assert {rule["for"] for rule in rules} == {"5m"}


def test_policy_from_the_environment_else_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["slo", "rules"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"groups": [{"name": "switchboard-slos", "rules": []}]}
    monkeypatch.setenv("SWITCHBOARD_POLICY", str(write_policy(tmp_path, SLOS)))
    assert main(["slo", "rules"]) == 0
    assert len(yaml.safe_load(capsys.readouterr().out)["groups"][0]["rules"]) == 8


def test_invalid_policy_exits_1_naming_the_slo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(tmp_path, '[[slos]]\nid = "x"\nmetric = "negative_exit_rate"\nmax = 0.1\n')
    assert main(["slo", "rules", "--policy", str(policy)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "slo 'x', field 'window': missing required field" in captured.err


def test_unreadable_policy_and_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slo", "rules", "--policy", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["slo", "rules", "--for", "two minutes"])
    assert exited.value.code == 2
