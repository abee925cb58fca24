"""`make run` (scripts/suite.py) as an operator meets it: it refuses taken ports, reports a service that
dies (during start-up and once running) at once and stops, says where the logs are, keeps service logs
JSON only; `make demo` keeps its data apart; `python -m <service> --help` lists settings and starts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.suite import STATE_DIR, Suite
from tests.conftest import REPO, free_port

PY = sys.executable
SUITE = str(REPO / "scripts" / "suite.py")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "services"), str(REPO / "gen" / "python"), str(REPO)])
    return {**env, **extra}


def _metering_args(state: Path, grpc_port: int) -> list[str]:
    return [
        PY,
        SUITE,
        "run",
        "--services",
        "metering",
        "--state-dir",
        str(state),
        "--port",
        f"metering={grpc_port}",
        "--port",
        f"metering_metrics={free_port()}",
    ]


def test_run_refuses_a_taken_port_before_starting_anything(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = subprocess.run(
            _metering_args(tmp_path, port), env=_env(), capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"port {port} (metering) is already in use" in result.stderr
    assert "--port" in result.stderr
    assert "ready" not in result.stdout and "running" not in result.stdout
    assert not (tmp_path / "pgdata").exists() and not (tmp_path / "logs").exists()


def test_a_service_that_dies_during_start_up_is_reported_at_once_never_ready(tmp_path):
    env = _env(METERING_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none", METERING_MAX_BATCH_SIZE="0")
    result = subprocess.run(
        _metering_args(tmp_path, free_port()), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "metering exited with code 1" in result.stderr
    assert "METERING_MAX_BATCH_SIZE must be between 1 and 100000" in result.stderr  # the log's tail
    assert "ready" not in result.stdout and "running" not in result.stdout
    assert f"logs of this run are in {tmp_path / 'logs'}" in result.stdout


async def test_a_service_that_dies_while_running_stops_the_suite_and_is_named(tmp_path, make_database):
    url = await make_database("metering")
    proc = await asyncio.create_subprocess_exec(
        *_metering_args(tmp_path, free_port()),
        env=_env(METERING_DATABASE_URL=url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        seen = []
        while not any("running" in line for line in seen):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"the suite ended early: {seen} {await proc.stderr.read()}"
            seen.append(line.decode())
        pid = int(re.search(r"metering\s+ready at \S+\s+\(pid (\d+)", "".join(seen)).group(1))
        assert any("logs in" in line for line in seen)
        os.kill(pid, signal.SIGKILL)
        code = await asyncio.wait_for(proc.wait(), 15)
        err = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            await proc.wait()
    assert code == 1
    assert f"metering exited with code -{int(signal.SIGKILL)}" in err and "stopping the others" in err
    log = (tmp_path / "logs" / "metering.log").read_text().splitlines()
    assert log, "metering logged nothing"
    records = [json.loads(line) for line in log]  # JSON only, alembic's migration lines included
    assert any(r.get("logger", "").startswith("alembic") for r in records)
    assert any(r.get("event") == "metering.started" for r in records)


def test_the_embedded_databases_output_goes_to_its_own_file_not_the_service_log(tmp_path):
    code = (
        "import logging; from common.logging import configure_logging; from common import db;"
        "configure_logging('metering');"
        f"db._embedded_output_to_file(__import__('pathlib').Path({str(tmp_path / 'pgdata')!r}));"
        "logging.getLogger('pgserver.postgres_server').info('PG_VERSION file found, skipping initdb');"
        "logging.getLogger('alembic.runtime.migration').info('Will assume transactional DDL.')"
    )
    result = subprocess.run([PY, "-c", code], env=_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert json.loads(line)["event"] == "Will assume transactional DDL."
    assert "skipping initdb" in (tmp_path / "logs" / "embedded-postgres.log").read_text()


def test_demo_keeps_its_database_and_logs_apart_from_run():
    run = Suite(ports={}, services=[], demo=False)
    demo = Suite(ports={}, services=[], demo=True)
    assert run.data_dir == STATE_DIR / "pgdata" and run.logs_dir == STATE_DIR / "logs"
    assert demo.data_dir == STATE_DIR / "demo" / "pgdata" and demo.logs_dir == STATE_DIR / "demo" / "logs"
    assert demo.credentials_dir == run.credentials_dir


@pytest.mark.parametrize(
    ("service", "variable", "default"),
    [
        ("metering", "METERING_SETTLE_SECONDS", "30.0"),
        ("billing", "BILLING_METERING_ADDRESS", "127.0.0.1:50051"),
        ("gateway", "GATEWAY_CATALOG_FILE", "unset"),
        ("payouts", "PAYOUTS_DEFAULT_HOLD_DAYS", "7"),
    ],
)
def test_service_help_lists_its_settings_and_starts_nothing(tmp_path, service, variable, default):
    port = free_port()
    prefix = service.upper()
    env = _env(
        **{
            f"{prefix}_GRPC_ADDRESS": f"127.0.0.1:{port}",
            f"{prefix}_DATA_DIR": str(tmp_path / "data"),
            f"{prefix}_AUTH_TOKEN": "not-to-be-printed",
        }
    )
    result = subprocess.run(
        [PY, "-m", service, "--help"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert f"{variable}  (default: {default}" in result.stdout
    assert f"{prefix}_GRPC_ADDRESS  (default: 127.0.0.1:5005" in result.stdout
    assert f"now: 127.0.0.1:{port})" in result.stdout
    assert "not-to-be-printed" not in result.stdout and "(set, hidden)" in result.stdout
    assert not (tmp_path / "data").exists()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nothing listens there


def test_a_killed_service_does_not_keep_the_embedded_database_running_after_the_suite(tmp_path):
    """pgserver stops its server when the last user in its pid list exits; a SIGKILLed service never
    leaves that list, so the suite drops dead pids once its children are stopped."""
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()
    suite = Suite(ports={}, services=[], state_dir=tmp_path)
    suite.data_dir.mkdir(parents=True)
    handles = suite.data_dir / ".handle_pids.json"
    handles.write_text(json.dumps([dead.pid, os.getpid()]))
    suite.forget_dead_database_users()
    assert json.loads(handles.read_text()) == [os.getpid()]
