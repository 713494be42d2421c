"""Known secret values never reach logs, the Dagster event log, run config, errors,
materialization metadata or output files."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest

from pg_metadata.catalog.sources import Source
from pg_metadata.orchestration.definitions import build_definitions
from pg_metadata_tests.conftest import IAM_DB_USER
from pg_metadata_tests.iam import REGION, SimulatedClock, secret_for
from pg_metadata_tests.rds_proxy import RdsIamProxy
from pg_metadata_tests.tls import make_server_cert

pytestmark = pytest.mark.integration

SESSION_KEY = "AKIDIAMUSERTEST01"
SECRET_KEY = "iam-user-secret-Zx9"
SESSION_TOKEN = "LEAKCHECK-session-token-7d1f0c"
BASIC_ROLE, BASIC_PASSWORD = "leak_basic", "LEAKCHECK-basic-pw-3a9e"
WRONG_PASSWORD = "LEAKCHECK-wrong-pw-88c2"


def event_log_text(instance: dg.DagsterInstance) -> str:
    """Every event of every run, serialized, plus every run's config and tags."""
    parts = []
    for run in instance.get_runs():
        parts.append(repr(run.run_config) + repr(run.tags))
        for entry in instance.all_logs(run.run_id):
            parts.append(dg.serialize_value(entry))
    return "\n".join(parts)


def files_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()
    )


def run_all(source: Source, instance, target: Path, raise_on_error=True):
    defs = build_definitions([source], target=str(target))
    results = [
        defs.resolve_job_def(f"{source.name}__discover_databases").execute_in_process(
            instance=instance, raise_on_error=raise_on_error
        )
    ]
    if results[0].success:
        results.append(
            defs.resolve_job_def(f"{source.name}__extract_database").execute_in_process(
                instance=instance, partition_key="shop", raise_on_error=raise_on_error
            )
        )
    return results


def test_no_secret_anywhere(
    pg_cluster, catalog_db, iam_db_role, aws_env, monkeypatch, caplog, capfd, tmp_path
):
    caplog.set_level(logging.DEBUG)
    if not pg_cluster.query("SELECT 1 FROM pg_roles WHERE rolname = %s", params=(BASIC_ROLE,)):
        pg_cluster.execute(f"CREATE ROLE {BASIC_ROLE} LOGIN")
    pg_cluster.execute(
        f"ALTER ROLE {BASIC_ROLE} PASSWORD '{BASIC_PASSWORD}'; "
        f"GRANT CONNECT ON DATABASE shop TO {BASIC_ROLE}"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SESSION_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("PGM_TEST_PASSWORD", BASIC_PASSWORD)
    monkeypatch.setenv("PGM_TEST_WRONG_PASSWORD", WRONG_PASSWORD)
    cert = make_server_cert(tmp_path / "tls", ["127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    out = tmp_path / "out"

    with (
        RdsIamProxy(
            pg_cluster.host,
            pg_cluster.port,
            REGION,
            secret_for,
            clock=SimulatedClock(),
            ssl_context=ctx,
        ) as proxy,
        dg.instance_for_test() as instance,
    ):
        common = {"database": "postgres", "retries": 0, "include": '{"^shop$": "*"}'}
        iam = Source(
            "iam",
            host=proxy.host,
            port=proxy.port,
            user=IAM_DB_USER,
            auth="iam_user",
            aws_region=REGION,
            **common,
        )
        basic = Source(
            "basic",
            host=pg_cluster.host,
            port=pg_cluster.port,
            user=BASIC_ROLE,
            password_env="PGM_TEST_PASSWORD",
            sslmode="disable",
            **common,
        )
        wrong = Source(
            "wrong",
            host=pg_cluster.host,
            port=pg_cluster.port,
            user=BASIC_ROLE,
            password_env="PGM_TEST_WRONG_PASSWORD",
            sslmode="disable",
            **common,
        )
        iam_bad_region = Source(
            "iam_bad_region",
            host=proxy.host,
            port=proxy.port,
            user=IAM_DB_USER,
            auth="iam_user",
            aws_region="us-west-1",
            **common,
        )
        ok = run_all(iam, instance, out) + run_all(basic, instance, out)
        failed = run_all(wrong, instance, out, False) + run_all(
            iam_bad_region, instance, out, False
        )
        tokens = [a.token for a in proxy.attempts]
        events = event_log_text(instance)

    assert [r.success for r in ok] == [True] * 4
    assert [r.success for r in failed] == [False, False]
    assert len(tokens) >= 3 and all(a.check.ok for a in proxy.attempts[:2])
    errors = "\n".join(
        e.step_failure_data.user_failure_data.description
        for r in failed
        for e in r.get_step_failure_events()
    )
    assert "password authentication failed" in errors and "PAM authentication failed" in errors
    captured = capfd.readouterr()
    places = {
        "python logs": caplog.text,
        "stdout/stderr": captured.out + captured.err,
        "event log, run config, metadata, errors": events,
        "error messages": errors,
        "output files": files_text(out),
    }
    signatures = [parse_qs(urlsplit("https://" + t).query)["X-Amz-Signature"][0] for t in tokens]
    secrets = [SECRET_KEY, SESSION_TOKEN, BASIC_PASSWORD, WRONG_PASSWORD, *signatures]
    for where, text in places.items():
        assert text, f"nothing captured from {where}"
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
