"""The fault soak's one-minute variant (bench/soak.py --minutes 1) held to its zero-loss figures.

Two servers on one PostgreSQL database and a Redis server of the soak's own (AOF on), steady load, 200
stream clients resuming at random, Telegram chats and push devices; then, in turn, a server killed
with SIGKILL, Redis restarted, every PostgreSQL connection terminated, and a storm of dropped stream
connections. The soak judges every client and every delivery row against the server's own records
and writes its figures as JSON; these tests read them. One run (~90 s) serves the whole module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOAK_DEADLINE = 300  # the soak bounds every phase itself; this only catches a hung run

pytestmark = pytest.mark.timeout(SOAK_DEADLINE + 60)


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("soak") / "figures.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "1", "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SOAK_DEADLINE,
        check=False,
    )
    assert completed.returncode == 0, f"the soak could not run:\n{completed.stderr[-4000:]}"
    figures: dict[str, Any] = json.loads(path.read_text())
    # Shown with -s, and in the failure report of any test below.
    print(completed.stdout)
    return figures


def windows(figures: dict[str, Any], *, fault: str | None = None) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in figures["windows"] if fault is None or w["fault"] == fault}


def test_the_soak_ran_every_fault_under_load(soak: dict[str, Any]) -> None:
    overall = soak["overall"]
    assert [w["fault"] for w in soak["windows"]] == [None, "kill", "redis", "postgres", "storm"]
    assert all(w["inject"] is not None and w["healed"] is not None for w in soak["windows"][1:])
    assert overall["status_changes"] > 1000
    assert overall["events_expected"] > 1000
    assert overall["stream_clients"] == 200
    assert overall["telegram"]["rows"] > 0
    assert overall["push"]["rows"] > 0
    assert overall["drained"]["drained"], "the delivery queue did not drain"


def test_stream_clients_miss_no_event_through_any_fault(soak: dict[str, Any]) -> None:
    lost = {name: w["streams"]["lost"] for name, w in windows(soak).items()}
    assert soak["overall"]["events_lost"] == 0, (lost, soak["overall"]["lost_samples"])


def test_stream_clients_get_no_event_twice(soak: dict[str, Any]) -> None:
    duplicated = {name: w["streams"]["duplicated"] for name, w in windows(soak).items()}
    assert soak["overall"]["events_duplicated"] == 0, duplicated


def test_redis_restart_with_aof_resets_no_stream(soak: dict[str, Any]) -> None:
    assert soak["overall"]["resets"] == 0, soak["overall"]["reset_reasons"]


def test_every_telegram_and_push_delivery_reaches_its_service(soak: dict[str, Any]) -> None:
    for channel in ("telegram", "push"):
        figures = soak["overall"][channel]
        assert figures["lost"] == 0, (channel, figures["rows_by_status"], figures["samples"])


def test_messages_repeat_only_for_rows_in_flight_in_the_killed_process(soak: dict[str, Any]) -> None:
    in_flight = soak["overall"]["in_flight_at_kill"]
    for channel in ("telegram", "push"):
        figures = soak["overall"][channel]
        assert figures["duplicated_outside_in_flight"] == 0, (channel, figures["samples"])
        assert figures["duplicated"] <= in_flight, (channel, figures["duplicated"], in_flight)


def test_no_5xx_outside_the_postgres_window(soak: dict[str, Any]) -> None:
    for name, window in windows(soak).items():
        if window["fault"] == "postgres":
            continue
        assert window["api"]["5xx"] == {}, (name, window["api"]["outcomes"])
        # A stream opened while Redis is down can't read history: 503 (API.md, Errors), never another 5xx.
        refusals = window["streams"]["refusals"]
        server_errors = {code: n for code, n in refusals.items() if int(code) >= 500}
        allowed = {"503"} if window["fault"] == "redis" else set()
        assert set(server_errors) <= allowed, (name, refusals)


def test_postgres_window_answers_only_503(soak: dict[str, Any]) -> None:
    for name, window in windows(soak, fault="postgres").items():
        assert set(window["api"]["5xx"]) <= {"503"}, (name, window["api"]["outcomes"])
        refusals = window["streams"]["refusals"]
        assert {code for code in refusals if int(code) >= 500} <= {"503"}, (name, refusals)
