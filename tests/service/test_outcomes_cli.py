"""``switchboard outcomes import``: CSV rows through the same validation and store as the endpoint."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from routing.insights import Outcome
from service.cli import main
from service.outcomes_cli import parse_row

pytestmark = pytest.mark.pack


def test_parse_row_reads_every_column() -> None:
    conversation_id, outcome = parse_row(
        {
            "conversation_id": "c1",
            "resolved": "yes",
            "transferred": "",
            "abandoned": "0",
            "churned": "false",
            "csat": "4",
            "handle_time_s": "312.5",
            "recontact_within_days": "3",
            "labels": "refund; vip",
        }
    )
    assert conversation_id == "c1"
    assert outcome == Outcome(
        resolved=True, csat=4, handle_time_s=312.5, recontact_within_days=3, labels=["refund", "vip"]
    )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"conversation_id": ""}, "conversation_id is empty"),
        ({"conversation_id": "c1", "csat": "great"}, "csat: expected a number"),
        ({"conversation_id": "c1", "csat": "9"}, "<= 5"),
        ({"conversation_id": "c1", "resolved": "maybe"}, "resolved: expected true/false"),
        ({"conversation_id": "c1", "mood": "x"}, "unknown column(s) mood"),
    ],
)
def test_parse_row_names_the_problem(row: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_row(row)


def test_import_records_outcomes_and_reports_bad_rows(
    tmp_path: Path, test_pack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from litestar.testing import TestClient

    from service.app import create_app
    from service.settings import Settings

    env = {
        "SWITCHBOARD_AUTH_DISABLED": "true",
        "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"),
        "SWITCHBOARD_PACK": str(test_pack),
        "SWITCHBOARD_POLICY_RELOAD_INTERVAL": "0",
        "SWITCHBOARD_SLO_INTERVAL_S": "0",
    }
    with TestClient(create_app(Settings.from_env(env))) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the pack did not load"
            time.sleep(0.05)
        for conversation in ("crm-1", "crm-2"):
            turn = {"speaker": "customer", "text": "my card was declined"}
            appended = client.post(f"/v1/conversations/{conversation}/turns", json={"turns": [turn]})
            assert appended.status_code == 200, appended.text
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    csv_file = tmp_path / "outcomes.csv"
    csv_file.write_text(
        "conversation_id,resolved,csat,labels\ncrm-1,true,5,refund\ncrm-2,no,2,\nnever-seen,true,4,\ncrm-1,true,9,\n",
        encoding="utf-8",
    )
    assert main(["outcomes", "import", str(csv_file)]) == 1
    captured = capsys.readouterr()
    assert "2 recorded, 0 unchanged, 2 failed" in captured.out
    assert f"{csv_file}:4:" in captured.err and f"{csv_file}:5:" in captured.err
    assert main(["outcomes", "import", str(csv_file)]) == 1  # again: the good rows change nothing
    assert "0 recorded, 2 unchanged, 2 failed" in capsys.readouterr().out
    with TestClient(create_app(Settings.from_env(env))) as client:
        assert client.get("/v1/conversations/crm-1/outcome").json() == {
            "resolved": True,
            "csat": 5,
            "labels": ["refund"],
        }
        assert client.get("/v1/conversations/crm-2/outcome").json() == {"csat": 2}
