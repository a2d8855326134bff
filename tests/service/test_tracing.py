"""Tracing (service/tracing.py, docs/tracing.md): the spans a request makes, where they go (an
OTLP receiver, the span file), the one trace id shared by span, log line and X-Trace-Id, and
nothing at all when tracing is off."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from loadkit.run.bundled_service import free_port
from loadkit.run.traces import read_span_files
from loadkit.traces.breakdown import split_of
from loadkit.traces.requests import Category
from service.__main__ import main as service_main
from service.app import create_app
from service.tracing import TracingConfigError, redact_query, setup_tracing
from tests.service.engines_api import (
    TEST_PASSWORD,
    SettingsFactory,
    log_lines,
    login,
    open_client,
    register,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
SERVER = 2  # SpanKind SERVER in OTLP
INTERNAL = 1


@pytest.fixture(autouse=True)
def clean_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the machine leaks into a test; every span is sampled unless a
    test says otherwise (as ``accept`` sets it when it records spans)."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "ENGINES_TRACE_FILE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")


def span_records(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans of one OTLP-JSON ExportTraceServiceRequest, attributes as a plain dict."""
    spans: list[dict[str, Any]] = []
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                attributes = {
                    a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", ())
                }
                spans.append({**span, "attributes": attributes})
    return spans


def read_span_file(path: Path) -> list[dict[str, Any]]:
    """Every span in a span file (one OTLP-JSON document per line)."""
    return [
        span for line in path.read_text().splitlines() for span in span_records(json.loads(line))
    ]


def duration_s(span: dict[str, Any]) -> float:
    return (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9


def server_span(spans: list[dict[str, Any]], trace_id: str) -> dict[str, Any]:
    (found,) = [s for s in spans if s["traceId"] == trace_id and s["kind"] == SERVER]
    return found


def children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spans if s.get("parentSpanId") == parent["spanId"]}


@asynccontextmanager
async def traced_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan: leaving it shuts tracing down, which flushes the spans."""
    async with open_client(app) as client:
        yield client


async def test_the_span_file_holds_otlp_json_with_the_span_contract(
    make_settings: SettingsFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    span_file = tmp_path / "spans.jsonl"
    app = create_app(make_settings(trace_file=str(span_file)))
    async with traced_client(app) as client:
        assert (await register(client, "span@example.org")).status_code == 201
        ok = await client.post(
            "/api/auth/login",
            json={"email": "span@example.org", "password": TEST_PASSWORD},
            headers={"traceparent": TRACEPARENT},
        )
        refused = await login(client, "span@example.org", "wrong password")
        assert (await client.get("/health")).status_code == 200
    assert ok.status_code == 200 and refused.status_code == 401

    lines = span_file.read_text().splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"resourceSpans"}
    resource = {a["key"]: a["value"] for a in first["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["service.name"] == {"stringValue": "engines"}
    spans = read_span_file(span_file)
    for span in spans:
        assert len(span["traceId"]) == 32 and int(span["traceId"], 16)
        assert len(span["spanId"]) == 16 and int(span["spanId"], 16)
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
        assert span["kind"] in (SERVER, INTERNAL, 3)

    # The client's traceparent: the span's trace id, parented on the client's span, and the
    # same id in X-Trace-Id and in the log line.
    assert ok.headers["X-Trace-Id"] == TRACE_ID
    login_span = server_span(spans, TRACE_ID)
    assert login_span["parentSpanId"] == PARENT_ID
    assert login_span["name"] == "POST /api/auth/login"
    assert login_span["attributes"]["http.route"] == "/api/auth/login"
    assert login_span["attributes"]["http.request.method"] == "POST"
    assert login_span["attributes"]["http.response.status_code"] == "200"
    assert "engines.error_kind" not in login_span["attributes"]
    requests = log_lines(capsys.readouterr().out, "request")
    assert TRACE_ID in [line["trace_id"] for line in requests]

    # Its children: the lock, the database, bcrypt (from its worker thread) and the token.
    below = children(spans, login_span)
    assert {"storage.lock_wait", "storage.lock_hold", "password.verify", "token.sign"} <= set(below)
    database = [s for s in below.values() if {"db.system", "db.system.name"} & set(s["attributes"])]
    assert database, below.keys()
    assert below["password.verify"]["traceId"] == TRACE_ID

    # The failed login names its kind; /health is not traced.
    failed = server_span(spans, refused.headers["X-Trace-Id"])
    assert failed["attributes"]["engines.error_kind"] == "invalid_credentials"
    assert failed["attributes"]["http.response.status_code"] == "401"
    routes = {s["attributes"].get("http.route") for s in spans if s["kind"] == SERVER}
    assert routes == {"/api/auth/register", "/api/auth/login"}
    # Every trace id in the file belongs to a request (no start-up statements as traces).
    assert {s["traceId"] for s in spans} == {s["traceId"] for s in spans if s["kind"] == SERVER}
    # The registration hashed in a thread too.
    register_span = next(s for s in spans if s["name"] == "POST /api/auth/register")
    assert "password.hash" in children(spans, register_span)


async def test_the_request_id_of_a_client_is_kept_beside_the_span_trace_id(
    make_settings: SettingsFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    span_file = tmp_path / "spans.jsonl"
    hex_id = "1234567890abcdef1234567890abcdef"
    app = create_app(make_settings(trace_file=str(span_file)))
    async with traced_client(app) as client:
        capsys.readouterr()
        named = await client.get("/api/items", headers={"X-Request-Id": "order-42"})
        hexed = await client.get("/api/items", headers={"X-Request-Id": hex_id})
        both = await client.get(
            "/api/items", headers={"X-Request-Id": "order-43", "traceparent": TRACEPARENT}
        )
    spans = read_span_file(span_file)
    lines = {line["trace_id"]: line for line in log_lines(capsys.readouterr().out, "request")}

    # Not a W3C trace id: the span's id is the trace id, the client's id a log field and an
    # attribute.
    named_id = named.headers["X-Trace-Id"]
    assert len(named_id) == 32 and named_id != "order-42"
    assert lines[named_id]["request_id"] == "order-42"
    assert server_span(spans, named_id)["attributes"]["engines.request_id"] == "order-42"
    # A W3C-shaped id with no traceparent becomes the span's trace id, as it was the log's.
    assert hexed.headers["X-Trace-Id"] == hex_id
    assert "request_id" not in lines[hex_id]
    assert "parentSpanId" not in server_span(spans, hex_id)
    # A traceparent wins over X-Request-Id.
    assert both.headers["X-Trace-Id"] == TRACE_ID
    assert lines[TRACE_ID]["request_id"] == "order-43"


class OtlpReceiver:
    """An OTLP/HTTP receiver on a free loopback port: decodes each protobuf
    ExportTraceServiceRequest POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.paths.append(self.path)
                received.requests.append(message)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def span_names(self) -> list[tuple[str, str]]:
        """(trace id, span name) of every span received."""
        return [
            (span.trace_id.hex(), span.name)
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


@pytest.fixture(scope="module")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


async def test_spans_go_to_the_otlp_endpoint_as_protobuf(
    make_settings: SettingsFactory,
    otlp_receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    otlp_receiver.requests.clear()
    app = create_app(make_settings())
    async with traced_client(app) as client:
        response = await client.post(
            "/api/auth/login",
            json={"email": "nobody@example.org", "password": TEST_PASSWORD},
            headers={"traceparent": TRACEPARENT},
        )
    assert response.status_code == 401
    assert otlp_receiver.paths and set(otlp_receiver.paths) == {"/v1/traces"}
    names = {name for trace_id, name in otlp_receiver.span_names() if trace_id == TRACE_ID}
    # An unknown user is checked against the dummy hash: the same work, the same spans.
    assert {"POST /api/auth/login", "storage.lock_wait", "password.verify"} <= names


async def test_tracing_off_installs_nothing_and_exports_nothing(
    make_settings: SettingsFactory,
    otlp_receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    otlp_receiver.requests.clear()
    global_provider = trace.get_tracer_provider()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    disabled = create_app(make_settings(trace_file=str(tmp_path / "spans.jsonl")))
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    unasked = create_app(make_settings())
    for app in (disabled, unasked):
        assert app.state.services.tracing is None
        assert OpenTelemetryMiddleware not in [getattr(m, "cls", None) for m in app.user_middleware]
        async with traced_client(app) as client:
            capsys.readouterr()
            response = await client.get("/api/items", headers={"traceparent": TRACEPARENT})
        # Off, the traceparent's trace id is still the request's.
        assert response.headers["X-Trace-Id"] == TRACE_ID
        (line,) = log_lines(capsys.readouterr().out, "request")
        assert line["trace_id"] == TRACE_ID
    assert not (tmp_path / "spans.jsonl").exists()
    assert otlp_receiver.requests == []
    # No provider was made global (an app uses its own, and only when tracing is on).
    assert trace.get_tracer_provider() is global_provider


def test_the_standard_variables_choose_exporters_and_sampler(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = make_settings(trace_file=str(tmp_path / "spans.jsonl"))
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(TracingConfigError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        setup_tracing(settings)
    # "none" switches OTLP off even with an endpoint; the span file stays.
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    tracing = setup_tracing(settings)
    assert tracing is not None and tracing.exporters == (f"file:{settings.trace_file}",)
    tracing.shutdown()
    assert setup_tracing(make_settings()) is None
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    tracing = setup_tracing(make_settings())
    assert tracing is not None and tracing.exporters == ("otlp",)
    assert "TraceIdRatioBased{0.25}" in tracing.provider.sampler.get_description()
    tracing.shutdown()


async def test_a_held_lock_shows_as_lock_hold_and_as_the_next_requests_lock_wait(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    span_file = tmp_path / "spans.jsonl"
    app = create_app(make_settings(trace_file=str(span_file), fault_lock_hold_ms=300))
    async with traced_client(app) as client:
        # Each login uses the lock once (unknown accounts: 401 after the same work).
        first, second = await asyncio.gather(
            login(client, "one@example.org"), login(client, "two@example.org")
        )
    assert {first.status_code, second.status_code} == {401}
    spans = read_span_file(span_file)
    holds = [s for s in spans if s["name"] == "storage.lock_hold"]
    faults = [s for s in spans if s["name"] == "fault.lock_hold"]
    waits = [s for s in spans if s["name"] == "storage.lock_wait"]
    assert len(holds) == len(faults) == len(waits) == 2
    assert all(duration_s(s) >= 0.3 for s in holds + faults)
    # The fault's span is inside the hold; the later request waited for the earlier's hold.
    hold_ids = {s["spanId"] for s in holds}
    assert {s["parentSpanId"] for s in faults} == hold_ids
    assert max(duration_s(s) for s in waits) >= 0.25
    # `loadkit traces` on this file: the two logins' time is the lock's, waiting and holding.
    split = split_of(read_span_files([span_file]).requests)
    lock = split.ms(Category.LOCK_WAIT) + split.ms(Category.LOCK_HOLD)
    assert split.requests == 2 and split.ms(Category.LOCK_WAIT) >= 250
    assert lock / (split.total_ns / 1e6) > 0.8, split


async def test_a_slow_query_fault_is_a_span_of_the_request(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    span_file = tmp_path / "spans.jsonl"
    app = create_app(make_settings(trace_file=str(span_file), fault_slow_query_ms=200))
    async with traced_client(app) as client:
        response = await client.post(
            "/api/auth/login",
            json={"email": "slow@example.org", "password": TEST_PASSWORD},
            headers={"traceparent": TRACEPARENT},
        )
    assert response.status_code == 401
    spans = read_span_file(span_file)
    request = server_span(spans, TRACE_ID)
    fault = children(spans, request)["fault.slow_query"]
    assert duration_s(fault) >= 0.2
    # `loadkit traces` on this file puts the request's time in the database.
    split = split_of(read_span_files([span_file]).requests)
    assert split.requests == 1 and split.dominant is Category.DATABASE, split
    assert split.ms(Category.DATABASE) >= 200


def test_sigterm_flushes_the_span_file(tmp_path: Path) -> None:
    span_file = tmp_path / "spans.jsonl"
    port = free_port()
    env = {
        **os.environ,
        "ENGINES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'engines.db'}",
        "ENGINES_BCRYPT_ROUNDS": "4",
        "ENGINES_TRACE_FILE": str(span_file),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        response = httpx.get(f"{url}/version", headers={"traceparent": TRACEPARENT})
        response = httpx.get(f"{url}/api/auth/me", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 401
        # The batch processor exports every 5 s: only the shutdown can have written it yet.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    spans = read_span_file(span_file)
    # /version is not traced: the one span of the trace is the request's to /api/auth/me.
    assert server_span(spans, TRACE_ID)["attributes"]["http.route"] == "/api/auth/me"


async def test_by_default_a_caller_that_sampled_is_traced_and_one_that_did_not_is_not(
    make_settings: SettingsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER")
    span_file = tmp_path / "spans.jsonl"
    unsampled_id = "fedcba9876543210fedcba9876543210"
    app = create_app(make_settings(trace_file=str(span_file)))
    assert "ParentBased" in app.state.services.tracing.provider.sampler.get_description()
    async with traced_client(app) as client:
        sampled = await client.get("/api/auth/me", headers={"traceparent": TRACEPARENT})
        unsampled = await client.get(
            "/api/auth/me", headers={"traceparent": f"00-{unsampled_id}-{PARENT_ID}-00"}
        )
    # Either way the trace id is the caller's; only the sampled one was recorded.
    assert (sampled.headers["X-Trace-Id"], unsampled.headers["X-Trace-Id"]) == (
        TRACE_ID,
        unsampled_id,
    )
    trace_ids = {span["traceId"] for span in read_span_file(span_file)}
    assert trace_ids == {TRACE_ID}


async def test_an_injected_error_is_the_failed_span_of_its_request(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    span_file = tmp_path / "spans.jsonl"
    settings = make_settings(
        trace_file=str(span_file),
        fault_error_share=1.0,
        fault_error_kind="storage_lock_timeout",
        fault_latency_ms=50,
    )
    app = create_app(settings)
    async with traced_client(app) as client:
        response = await client.get("/api/auth/me", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 503
    spans = read_span_file(span_file)
    request = server_span(spans, TRACE_ID)
    assert request["attributes"]["engines.error_kind"] == "storage_lock_timeout"
    assert request["attributes"]["http.response.status_code"] == "503"
    assert request["attributes"]["http.route"] == "/api/auth/me"  # refused before routing
    assert request["status"]["code"] == 2  # ERROR
    below = children(spans, request)
    assert below["fault.error"]["attributes"]["engines.error_kind"] == "storage_lock_timeout"
    assert below["fault.error"]["status"]["code"] == 2
    assert duration_s(below["fault.latency"]) >= 0.05


def test_a_span_file_that_cannot_be_opened_stops_start_up_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGINES_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'engines.db'}")
    monkeypatch.setenv("ENGINES_TRACE_FILE", str(tmp_path / "no such folder" / "spans.jsonl"))
    assert service_main(["--port", str(free_port())]) == 2
    error = capsys.readouterr().err
    assert "ENGINES_TRACE_FILE=" in error and "No such file or directory" in error


async def test_the_server_span_keeps_the_path_but_not_the_querys_values(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    # accept writes the span file next to results that claim secrets are masked.
    span_file = tmp_path / "spans.jsonl"
    app = create_app(make_settings(trace_file=str(span_file)))
    async with traced_client(app) as client:
        answer = await client.get("/api/items/7?key=SuperSecret123&flag")
    assert "SuperSecret123" not in span_file.read_text()
    span = server_span(read_span_file(span_file), answer.headers["X-Trace-Id"])
    attributes = span["attributes"]
    assert attributes["http.url"].endswith("/api/items/7?key=REDACTED&REDACTED")
    assert attributes["http.route"] == "/api/items/{item_id}"
    assert attributes.get("http.target", "/api/items/7").startswith("/api/items/7")


def test_a_query_keeps_its_names_and_loses_its_values() -> None:
    assert redact_query("key=s%20ecret&page=2&&flag") == "key=REDACTED&page=REDACTED&&REDACTED"
    assert redact_query("") == ""
