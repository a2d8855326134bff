"""``loadkit smoke``: a smoke flow once, its checks concurrently, with httpx on asyncio.

The run: a preflight request (an unreachable target is one ``TargetUnreachableError``, not ten
failed checks); the flow's setup steps in order, saving values for later ones; each check's own
setup steps (an item a check deletes is its own, so a concurrent delete cannot race a get); then
all checks at once, each on its own ``AsyncClient`` (one shared client showed p99 3-5x p50 here,
see FACTS.md), each recorded into a ``LatencyRecorder``. Setup requests are not measured.

What the flow is (``engines.smoke_flow``), how its strings are filled and secrets masked
(``engines.templates``) and how a response is judged (``engines.expectations``) are pure; this
module sends. Never imports Locust (it would monkey-patch asyncio onto gevent).
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets as random_tokens
import ssl
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from loadkit.config import SmokeCheck, SmokeConfig, SmokeRequest, SmokeStep, TargetProfile
from loadkit.engines.expectations import (
    FailedExpectation,
    Response,
    body_document,
    first_failure,
    search,
)
from loadkit.engines.http_request import TlsOptions
from loadkit.engines.smoke_flow import FRESH_VALUES, Flow, env_variables, plan_flow
from loadkit.engines.target import parse_target
from loadkit.engines.templates import Secrets, read_secrets, render, render_json
from loadkit.engines.tls import client_context
from loadkit.exceptions import ConfigError, TargetUnreachableError
from loadkit.measure.classify import (
    ResponseVerdict,
    classify_httpx_error,
    classify_response,
    describe_error,
)
from loadkit.measure.error_reader import ErrorReader
from loadkit.measure.kinds import ErrorKind
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.results import SmokeCheckResult, SmokeResults
from loadkit.measure.validity import aborted_reason
from loadkit.url_credentials import mask_password

USER_AGENT = "loadkit-smoke"


class _Values(Mapping[str, object]):
    """The values ``{name}`` reads: the run's own (an account, an id), those steps saved, and
    fresh ones made at each read (``{new_email}``, ``{uuid}``)."""

    def __init__(self, saved: Mapping[str, object] | None = None) -> None:
        tag = random_tokens.token_hex(6)
        # A random address per run: reruns against one database never collide (409).
        self.saved: dict[str, object] = {
            "email": f"smoke-{tag}@loadkit.test",
            "password": f"smoke-{random_tokens.token_hex(12)}",
            "run_id": tag,
        }
        self.saved.update(saved or {})

    def with_saved(self) -> _Values:
        """A copy a check's own setup can add to without the other checks seeing it."""
        copy = _Values.__new__(_Values)
        copy.saved = dict(self.saved)
        return copy

    def __getitem__(self, name: str) -> object:
        if name == "new_email":
            return f"smoke-{random_tokens.token_hex(6)}@loadkit.test"
        if name == "uuid":
            return str(uuid.uuid4())
        return self.saved[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self.saved, *FRESH_VALUES])

    def __len__(self) -> int:
        return len(self.saved) + len(FRESH_VALUES)


@dataclass
class _Run:
    """One run's flow, secrets and values, and the first setup failure (checks that needed the
    setup report it)."""

    flow: Flow
    secrets: Secrets
    values: _Values
    target: TargetProfile = field(default_factory=TargetProfile)
    failure: SmokeCheckResult | None = field(default=None)

    def __post_init__(self) -> None:
        # The bundled service's profile is read the fast way (no reader).
        self.reader = None if self.target.is_bundled else ErrorReader(self.target)

    def judge_status(self, response: httpx.Response, request: SmokeRequest) -> ResponseVerdict:
        """The status judged, with the error's kind and trace id read as the target says."""
        return classify_response(
            response.status_code,
            response.headers,
            response.content,
            expected_status=request.statuses,
            reader=self.reader,
        )

    def trace(self) -> tuple[str, str]:
        """A fresh trace id, and the trace header's value that carries it."""
        trace_id = random_tokens.token_hex(16)
        if self.target.trace_header.lower() == "traceparent":
            return trace_id, f"00-{trace_id}-{random_tokens.token_hex(8)}-01"
        return trace_id, trace_id


def validate_host(host: str) -> str:
    """The base URL without a trailing slash; a ConfigError for anything but http(s)://host."""
    parse_target(host, option="--host")
    return host.strip().rstrip("/")


def run_smoke(
    *,
    host: str,
    config: SmokeConfig,
    http2: bool = False,
    timeout_s: float | None = None,
    tls: TlsOptions | None = None,
    target: TargetProfile | None = None,
) -> SmokeResults:
    """Run the smoke flow against ``host`` and return their results (no printing); ``tls``
    says how an https target's certificate is checked (default: verified); ``target`` how the
    API reports errors and trace ids (default: as the bundled service does)."""
    return asyncio.run(
        run_smoke_async(
            host=host, config=config, http2=http2, timeout_s=timeout_s, tls=tls, target=target
        )
    )


async def run_smoke_async(
    *,
    host: str,
    config: SmokeConfig,
    http2: bool = False,
    timeout_s: float | None = None,
    tls: TlsOptions | None = None,
    target: TargetProfile | None = None,
) -> SmokeResults:
    """``run_smoke`` for callers already inside an event loop."""
    base = validate_host(host)
    flow = plan_flow(config)
    secrets = read_secrets(env_variables(flow), os.environ)
    timeout = timeout_s if timeout_s is not None else config.timeout_s
    if not (math.isfinite(timeout) and timeout > 0):
        # nan would reach anyio as a deadline and crash with a traceback.
        raise ConfigError(f"--timeout must be a number of seconds above 0, not {timeout:g}")
    clients = _ClientFactory(base=base, http2=http2, timeout_s=timeout, tls=tls or TlsOptions())
    run = _Run(flow=flow, secrets=secrets, values=_Values(), target=target or TargetProfile())

    async with clients.new() as client:
        await _preflight(client, base, timeout, flow.preflight_path, http2=http2)
        await _set_up(client, run)
        own = await asyncio.gather(*(_own_setup(client, run, check) for check in flow.checks))

    clock = RunClock()
    recorder = LatencyRecorder(start=clock.now())
    results = await asyncio.gather(
        *(
            _run_check(check, values, run, clients, recorder, clock)
            for check, values in zip(flow.checks, own, strict=True)
        )
    )
    end = clock.now()
    recorder.finish(end=end)

    shown: dict[str, Any] = {"http2": http2, "timeout_s": timeout}
    if config.setup:
        shown["setup"] = [_as_given(step) for step in config.setup]
    shown["checks"] = [_as_given(check) for check in config.checks]
    return SmokeResults(
        target=base, config=shown, checks=list(results), **recorder.traffic_fields()
    )


def aborted_smoke_results(*, host: str, reason: str) -> SmokeResults:
    """Results for a smoke run that never ran (the target unreachable): marked aborted, so that
    ``--out`` replaces an earlier file the gate would otherwise pass, with one it calls invalid."""
    recorder = LatencyRecorder(start=RunClock().now())
    recorder.finish(end=recorder.start)
    return SmokeResults(
        target=host,
        invalid_reasons=[aborted_reason(reason)],
        **recorder.traffic_fields(),
    )


class _ClientFactory:
    """One ``AsyncClient`` per concurrent task, all sharing one TLS context (building one costs
    ~17 ms here, ten of them would be most of a smoke run)."""

    def __init__(self, *, base: str, http2: bool, timeout_s: float, tls: TlsOptions) -> None:
        self.base = base
        self.http2 = http2
        self.timeout = httpx.Timeout(timeout_s)
        if base.startswith("https://"):
            self.tls: ssl.SSLContext = client_context(tls)
        else:
            # Plain http never uses it; an unloaded context spares loading the CA bundle.
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    def new(self) -> httpx.AsyncClient:
        # http1=False with http2=True is HTTP/2 with prior knowledge (no upgrade dance).
        return httpx.AsyncClient(
            base_url=self.base,
            http1=not self.http2,
            http2=self.http2,
            timeout=self.timeout,
            verify=self.tls,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            trust_env=False,
        )


async def _preflight(
    client: httpx.AsyncClient, base: str, timeout_s: float, path: str, *, http2: bool
) -> None:
    # Any HTTP answer, even an error status, means the target is there; only no answer at all
    # stops the run before it starts.
    try:
        await client.get(path)
    except httpx.HTTPError as exc:
        reason = _unreachable_reason(exc, timeout_s)
        if http2 and classify_httpx_error(exc) in {
            ErrorKind.CONNECTION_RESET,
            ErrorKind.PROTOCOL_ERROR,
        }:
            # uvicorn (the bundled service) speaks HTTP/1.1 only and hangs up on an h2 preface.
            reason += "; does it speak HTTP/2 with prior knowledge (h2c)? try without --http2"
        raise TargetUnreachableError(f"cannot reach {mask_password(base)}: {reason}") from None


def _unreachable_reason(error: httpx.HTTPError, timeout_s: float) -> str:
    kind = classify_httpx_error(error)
    text = str(error).lower()
    if "refused" in text or isinstance(_root(error), ConnectionRefusedError):
        return "connection refused"
    if kind == ErrorKind.TIMEOUT:
        return f"no answer within {timeout_s:g} s"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    if kind == ErrorKind.TLS_ERROR:
        return (
            f"TLS failed ({describe_error(error)}); trust the target's CA with --ca-cert FILE, "
            "or check no certificate with --insecure"
        )
    return f"{kind.replace('_', ' ')} ({describe_error(error)})"


def _root(error: BaseException) -> BaseException:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


def _as_given(request: SmokeRequest) -> dict[str, Any]:
    # The configuration as written (templates, never a secret's value), without unset keys.
    return request.model_dump(mode="json", by_alias=True, exclude_defaults=True)


@dataclass(frozen=True)
class _Sent:
    """A request sent: its path as shown (masked), the response or the error, the seconds it
    took, and the trace id it carried."""

    path: str
    outcome: httpx.Response | httpx.HTTPError
    seconds: float
    trace_id: str


async def _send(
    client: httpx.AsyncClient, request: SmokeRequest, values: Mapping[str, object], run: _Run
) -> _Sent:
    """Send ``request`` filled in, with a fresh trace header."""
    secrets = run.secrets
    path = render(request.path, values, secrets)
    query = {
        key: render(value, values, secrets) if isinstance(value, str) else _scalar(value)
        for key, value in request.query.items()
    }
    headers = {key: render(text, values, secrets) for key, text in request.headers.items()}
    body = render_json(request.json_body, values, secrets)
    form = (
        {
            key: render(value, values, secrets) if isinstance(value, str) else _scalar(value)
            for key, value in request.form.items()
        }
        if request.form is not None
        else None
    )
    shown = secrets.mask(path + (f"?{httpx.QueryParams(query)}" if query else ""))
    trace_id, headers[run.target.trace_header] = run.trace()
    started = time.perf_counter()
    try:
        response = await client.request(
            request.method,
            path,
            params=query or None,
            headers=headers,
            json=body,
            data=form,
        )
    except httpx.HTTPError as exc:
        return _Sent(shown, exc, time.perf_counter() - started, trace_id)
    return _Sent(shown, response, time.perf_counter() - started, trace_id)


def _scalar(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


async def _set_up(client: httpx.AsyncClient, run: _Run) -> None:
    for step in run.flow.setup:
        failure = await _step(client, run, step, run.values)
        if failure is not None:
            run.failure = failure
            return


async def _own_setup(
    client: httpx.AsyncClient, run: _Run, check: SmokeCheck
) -> _Values | SmokeCheckResult:
    """The values a check runs with after its own setup steps, or why it cannot run."""
    if run.failure is not None and run.flow.needs_setup(check):
        # The check cannot mean anything without its account or token: report the setup's
        # failure against it rather than send a request bound to fail for another reason.
        return run.failure
    values = run.values.with_saved()
    for step in check.setup:
        failure = await _step(client, run, step, values)
        if failure is not None:
            return failure
    return values


async def _step(
    client: httpx.AsyncClient, run: _Run, step: SmokeStep, values: _Values
) -> SmokeCheckResult | None:
    """Run a setup step, saving its values into ``values``; its failure, or None."""
    sent = await _send(client, step, values, run)
    path, outcome, seconds = sent.path, sent.outcome, sent.seconds
    expected = step.statuses[0]
    if isinstance(outcome, httpx.HTTPError):
        return SmokeCheckResult(
            name=f"setup: {step.name}",
            method=step.method,
            path=path,
            expected_status=expected,
            passed=False,
            error_kind=classify_httpx_error(outcome),
            trace_id=sent.trace_id,
            message=run.secrets.mask(f"setup ({step.name}) failed: {describe_error(outcome)}"),
        )
    response = outcome
    problem: str | None = None
    verdict = run.judge_status(response, step)
    if verdict.ok:
        judged = Response(response.status_code, response.headers, response.content, seconds * 1e3)
        failed = first_failure(step, judged, values, run.secrets)
        if failed is not None:
            problem = failed.message
        else:
            document = body_document(response.content)
            for name, expression in step.save.items():
                saved = search(expression, document)
                if saved is None:
                    problem = f"nothing at `{expression}` in the answer to save as {{{name}}}"
                    break
                values.saved[name] = saved
    if verdict.ok and problem is None:
        return None
    detail = problem or verdict.message or f"status {response.status_code}"
    return SmokeCheckResult(
        name=f"setup: {step.name}",
        method=step.method,
        path=path,
        expected_status=expected,
        status=response.status_code,
        passed=False,
        error_kind=verdict.kind
        or (ErrorKind.EXPECTATION_FAILED.value if problem else ErrorKind.UNEXPECTED_STATUS.value),
        trace_id=verdict.trace_id or sent.trace_id,
        message=run.secrets.mask(f"setup ({step.name}) answered {response.status_code}: {detail}"),
    )


async def _run_check(
    check: SmokeCheck,
    values: _Values | SmokeCheckResult,
    run: _Run,
    clients: _ClientFactory,
    recorder: LatencyRecorder,
    clock: RunClock,
) -> SmokeCheckResult:
    expected = check.statuses[0]
    if isinstance(values, SmokeCheckResult):
        return values.model_copy(
            update={
                "name": check.name,
                "method": check.method,
                "path": run.secrets.mask(check.path),
                "expected_status": expected,
            }
        )
    endpoint = f"{check.method} {check.path}"
    async with clients.new() as client:
        sent = await _send(client, check, values, run)
    path, outcome, latency = sent.path, sent.outcome, sent.seconds
    if isinstance(outcome, httpx.HTTPError):
        lost = classify_httpx_error(outcome)
        said = run.secrets.mask(describe_error(outcome))
        recorder.record(
            endpoint=endpoint,
            latency_s=latency,
            end=clock.now(),
            error_kind=lost,
            trace_id=sent.trace_id,
            message=said,
        )
        return SmokeCheckResult(
            name=check.name,
            method=check.method,
            path=path,
            expected_status=expected,
            passed=False,
            latency_ms=round(latency * 1000.0, 3),
            error_kind=lost,
            trace_id=sent.trace_id,
            message=said,
        )
    response = outcome
    verdict = run.judge_status(response, check)
    kind: str | None = verdict.kind
    message: str | None = verdict.message
    failed: FailedExpectation | None = None
    if verdict.ok:
        judged = Response(response.status_code, response.headers, response.content, latency * 1e3)
        failed = first_failure(check, judged, values, run.secrets)
        if failed is not None:
            kind, message = ErrorKind.EXPECTATION_FAILED.value, failed.message
    message = run.secrets.mask(message) if message is not None else None
    # A failure's trace id: the service's when it said one, else the one the request carried.
    trace_id = verdict.trace_id or (sent.trace_id if kind is not None else None)
    recorder.record(
        endpoint=endpoint,
        latency_s=latency,
        end=clock.now(),
        error_kind=kind,
        status=response.status_code,
        trace_id=trace_id,
        message=message,
    )
    return SmokeCheckResult(
        name=check.name,
        method=check.method,
        path=path,
        expected_status=expected,
        status=response.status_code,
        passed=kind is None,
        latency_ms=round(latency * 1000.0, 3),
        error_kind=kind,
        trace_id=trace_id,
        message=message,
    )
