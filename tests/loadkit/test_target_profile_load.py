"""``loadkit load`` (Locust, native) against an API that is not ours: the target profile names its
error kinds (RFC 7807 problems), and every request carries a fresh trace header whose id follows
its failure into the results."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.config import LoadProfile, TargetProfile
from loadkit.engines.http_request import RequestSpec
from loadkit.run.bundled_service import free_port
from loadkit.run.load import run_load
from loadkit.run.native import run_native_load
from tests.loadkit.orders_api import orders_api

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Clerk(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def unsigned(self):
        self.client.get("/v2/orders/ORD-9")  # 401, a problem "unauthenticated"

    @task
    def nowhere(self):
        self.client.get("/v2/nowhere")  # 404, a problem "no-route"
"""
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("profile", ["problem", "bundled"])
def test_load_reads_the_targets_kinds_and_records_the_trace_ids_it_sent(
    tmp_path: Path, profile: str
) -> None:
    locustfile = tmp_path / "clerk.py"
    locustfile.write_text(LOCUSTFILE)
    target = (
        TargetProfile.model_validate(
            {
                "error_kind": {"problem": True},
                "trace_header": "X-Request-Id",
                "trace_response_header": "X-Request-Id",
            }
        )
        if profile == "problem"
        else TargetProfile()
    )
    seen: list[tuple[str | None, str | None]] = []
    out = tmp_path / "load.json"
    with orders_api(secret="unused", seen=seen) as url:
        results = run_load(
            target=url,
            profile=LoadProfile(scenario=str(locustfile), concurrency=2, duration_s=1),
            out=out,
            quiet=True,
            target_profile=target,
        )
    assert results.totals.requests > 0 and results.totals.errors == results.totals.requests
    kinds = {group.endpoint: group.kind for group in results.errors}
    if profile == "problem":
        assert kinds == {"GET /v2/orders/ORD-9": "unauthenticated", "GET /v2/nowhere": "no-route"}
        sent = {request_id for _, request_id in seen}
        assert all(traceparent is None for traceparent, _ in seen)
    else:
        assert set(kinds.values()) == {"unexpected_status"}
        sent = {traceparent.split("-")[1] for traceparent, _ in seen if traceparent}
        assert all(
            traceparent and re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", traceparent)
            for traceparent, _ in seen
        )
    # A fresh id on every request, and each failure's id is one that was sent.
    assert len(sent) == len(seen) and all(HEX32.fullmatch(str(i)) for i in sent)
    for group in results.errors:
        assert group.example_trace_id in sent
        assert set(group.trace_ids) <= sent


@pytest.mark.parametrize("source", ["problem", "header"])
def test_the_native_engine_reads_the_targets_kinds_and_sends_its_trace_header(
    tmp_path: Path, source: str
) -> None:
    # The kind in the body (RFC 7807) or in a response header (X-Error-Code: "<slug>-h"), as
    # the Locust engine reads them: the native engine parses a failure's head for it.
    error_kind = {"problem": True} if source == "problem" else {"header": "X-Error-Code"}
    target = TargetProfile.model_validate(
        {"error_kind": error_kind, "trace_header": "X-Request-Id"}
    )
    seen: list[tuple[str | None, str | None]] = []
    with orders_api(secret="unused", seen=seen) as url:
        results = run_native_load(
            request=RequestSpec(url=f"{url}/v2/nowhere", target=target),
            profile=LoadProfile(scenario="url", concurrency=2, duration_s=0.5),
            out=tmp_path / "load.json",
            quiet=True,
        )
    (group,) = results.errors
    kind = "no-route" if source == "problem" else "no-route-h"
    assert (group.endpoint, group.kind) == ("GET /v2/nowhere", kind)
    # (the server also saw what was in flight at the end, not measured)
    assert 0 < group.count == results.totals.requests <= len(seen)
    sent = {request_id for traceparent, request_id in seen if traceparent is None}
    assert len(sent) == len(seen) and all(HEX32.fullmatch(str(i)) for i in sent)
    assert group.example_trace_id in sent and set(group.trace_ids) <= sent


def test_a_remote_worker_reads_kinds_and_sends_the_header_as_its_master_says(
    tmp_path: Path,
) -> None:
    # The worker runs in a folder with no acceptance.toml: the profile is the master's, which
    # reaches it with the spawn message, after the worker's own start.
    locustfile = tmp_path / "clerk.py"
    locustfile.write_text(LOCUSTFILE)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    target = TargetProfile.model_validate(
        {"error_kind": {"problem": True}, "trace_header": "X-Request-Id"}
    )
    port = free_port()
    seen: list[tuple[str | None, str | None]] = []
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "loadkit", "load", "--worker", "--master-port", str(port)),
            *("--scenario", str(locustfile)),
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with orders_api(secret="unused", seen=seen) as url:
            results = run_load(
                target=url,
                profile=LoadProfile(scenario=str(locustfile), concurrency=2, duration_s=1),
                out=tmp_path / "load.json",
                quiet=True,
                master=True,
                expect_workers=1,
                master_bind_port=port,
                target_profile=target,
            )
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    kinds = {group.endpoint: group.kind for group in results.errors}
    assert kinds == {"GET /v2/orders/ORD-9": "unauthenticated", "GET /v2/nowhere": "no-route"}
    assert seen and all(traceparent is None and request_id for traceparent, request_id in seen)
