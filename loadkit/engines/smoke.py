"""``loadkit smoke``: every smoke check once, concurrently, with httpx on asyncio.

The run: a preflight request (an unreachable target is one ``TargetUnreachableError``, not ten
failed checks); a setup that registers an account of the run's own, logs in and creates one item
per ``{item_id}`` check (separate items, so a concurrent delete cannot race a get); then all
checks at once, each on its own ``AsyncClient`` (one shared client showed p99 3-5x p50 here, see
FACTS.md), each recorded into a ``LatencyRecorder``. Setup requests are not measured.

Never imports Locust (it would monkey-patch asyncio onto gevent).
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from loadkit.config import SmokeCheck, SmokeConfig
from loadkit.engines.http_request import TlsOptions
from loadkit.engines.target import parse_target
from loadkit.engines.tls import client_context
from loadkit.exceptions import ConfigError, TargetUnreachableError
from loadkit.measure.classify import classify_httpx_error, classify_response, describe_error
from loadkit.measure.kinds import ErrorKind
from loadkit.measure.recorder import LatencyRecorder, RunClock
from loadkit.measure.results import SmokeCheckResult, SmokeResults
from loadkit.measure.validity import aborted_reason

PREFLIGHT_PATH = "/health"
REGISTER_PATH = "/api/auth/register"
LOGIN_PATH = "/api/auth/login"
ITEMS_PATH = "/api/items"
TOKEN_FIELD = "access_token"
PLACEHOLDERS = frozenset({"email", "password", "new_email", "item_id"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
USER_AGENT = "loadkit-smoke"


@dataclass
class _Setup:
    """What the checks need from the setup: an account, a token, items; or why it failed."""

    email: str
    password: str
    token: str | None = None
    item_ids: dict[str, int] = field(default_factory=dict)
    failure: SmokeCheckResult | None = None


def validate_host(host: str) -> str:
    """The base URL without a trailing slash; a ConfigError for anything but http(s)://host."""
    parse_target(host, option="--host")
    return host.strip().rstrip("/")


def placeholders_in(check: SmokeCheck) -> set[str]:
    """The placeholders a check uses in its path and in its JSON body's strings."""
    found = set(_PLACEHOLDER.findall(check.path))
    for text in _strings(check.json_body):
        found.update(_PLACEHOLDER.findall(text))
    return found


def validate_checks(config: SmokeConfig) -> None:
    """A ConfigError naming the check whose placeholder the runner cannot fill."""
    for index, check in enumerate(config.checks):
        unknown = placeholders_in(check) - PLACEHOLDERS
        if unknown:
            names = ", ".join("{" + u + "}" for u in sorted(unknown))
            known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ConfigError(
                f"smoke.checks[{index}] ({check.name}): unknown placeholder {names}; known: {known}"
            )


def run_smoke(
    *,
    host: str,
    config: SmokeConfig,
    http2: bool = False,
    timeout_s: float | None = None,
    tls: TlsOptions | None = None,
) -> SmokeResults:
    """Run the smoke checks against ``host`` and return their results (no printing); ``tls``
    says how an https target's certificate is checked (default: verified)."""
    return asyncio.run(
        run_smoke_async(host=host, config=config, http2=http2, timeout_s=timeout_s, tls=tls)
    )


async def run_smoke_async(
    *,
    host: str,
    config: SmokeConfig,
    http2: bool = False,
    timeout_s: float | None = None,
    tls: TlsOptions | None = None,
) -> SmokeResults:
    """``run_smoke`` for callers already inside an event loop."""
    base = validate_host(host)
    validate_checks(config)
    timeout = timeout_s if timeout_s is not None else config.timeout_s
    if not (math.isfinite(timeout) and timeout > 0):
        # nan would reach anyio as a deadline and crash with a traceback.
        raise ConfigError(f"--timeout must be a number of seconds above 0, not {timeout:g}")
    clients = _ClientFactory(base=base, http2=http2, timeout_s=timeout, tls=tls or TlsOptions())

    async with clients.new() as client:
        await _preflight(client, base, timeout, http2=http2)
        setup = await _set_up(client, config.checks)

    clock = RunClock()
    recorder = LatencyRecorder(start=clock.now())
    results = await asyncio.gather(
        *(_run_check(check, setup, clients, recorder, clock) for check in config.checks)
    )
    end = clock.now()
    recorder.finish(end=end)

    return SmokeResults(
        target=base,
        config={
            "http2": http2,
            "timeout_s": timeout,
            "checks": [c.model_dump(mode="json", by_alias=True) for c in config.checks],
        },
        checks=list(results),
        **recorder.traffic_fields(),
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
    client: httpx.AsyncClient, base: str, timeout_s: float, *, http2: bool
) -> None:
    # Any HTTP answer, even an error status, means the target is there; only no answer at all
    # stops the run before it starts.
    try:
        await client.get(PREFLIGHT_PATH)
    except httpx.HTTPError as exc:
        reason = _unreachable_reason(exc, timeout_s)
        if http2 and classify_httpx_error(exc) in {
            ErrorKind.CONNECTION_RESET,
            ErrorKind.PROTOCOL_ERROR,
        }:
            # uvicorn (the bundled service) speaks HTTP/1.1 only and hangs up on an h2 preface.
            reason += "; does it speak HTTP/2 with prior knowledge (h2c)? try without --http2"
        raise TargetUnreachableError(f"cannot reach {base}: {reason}") from None


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


async def _set_up(client: httpx.AsyncClient, checks: tuple[SmokeCheck, ...]) -> _Setup:
    # A random address per run: reruns against one database never collide (409).
    tag = secrets.token_hex(6)
    setup = _Setup(email=f"smoke-{tag}@loadkit.test", password=f"smoke-{secrets.token_hex(12)}")
    used = set().union(*(placeholders_in(c) for c in checks)) if checks else set()
    needs_login = any(c.auth for c in checks) or "item_id" in used
    needs_account = needs_login or bool(used & {"email", "password"})
    if not needs_account:
        return setup
    credentials = {"email": setup.email, "password": setup.password}
    steps: list[tuple[str, str, dict[str, Any], int]] = [
        ("register", REGISTER_PATH, credentials, 201)
    ]
    if needs_login:
        steps.append(("login", LOGIN_PATH, credentials, 200))
    for step, path, body, expected in steps:
        response = await _setup_request(setup, client, step, "POST", path, body, expected)
        if response is None:
            return setup
        if step == "login":
            token = _json_field(response, TOKEN_FIELD)
            if not isinstance(token, str):
                setup.failure = _setup_failure(
                    step, "POST", path, expected, response, f"no {TOKEN_FIELD!r} in the answer"
                )
                return setup
            setup.token = token
    item_checks = [c for c in checks if "item_id" in placeholders_in(c)]
    headers = {"Authorization": f"Bearer {setup.token}"}
    responses = await asyncio.gather(
        *(
            _setup_request(
                setup,
                client,
                f"item for {c.name}",
                "POST",
                ITEMS_PATH,
                {"name": f"loadkit smoke: {c.name}"},
                201,
                headers,
            )
            for c in item_checks
        )
    )
    for check, response in zip(item_checks, responses, strict=True):
        item_id = _json_field(response, "id") if response is not None else None
        if isinstance(item_id, int):
            setup.item_ids[check.name] = item_id
        elif response is not None and setup.failure is None:
            setup.failure = _setup_failure(
                f"item for {check.name}", "POST", ITEMS_PATH, 201, response, "no 'id' in the answer"
            )
    return setup


async def _setup_request(
    setup: _Setup,
    client: httpx.AsyncClient,
    step: str,
    method: str,
    path: str,
    body: dict[str, Any],
    expected: int,
    headers: dict[str, str] | None = None,
) -> httpx.Response | None:
    """A setup request; on failure, remember why (the checks that needed it will say so)."""
    try:
        response = await client.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        if setup.failure is None:
            setup.failure = SmokeCheckResult(
                name=f"setup: {step}",
                method=method,
                path=path,
                expected_status=expected,
                passed=False,
                error_kind=classify_httpx_error(exc),
                message=f"setup ({step}) failed: {describe_error(exc)}",
            )
        return None
    if response.status_code != expected:
        if setup.failure is None:
            setup.failure = _setup_failure(step, method, path, expected, response, None)
        return None
    return response


def _setup_failure(
    step: str,
    method: str,
    path: str,
    expected: int,
    response: httpx.Response,
    problem: str | None,
) -> SmokeCheckResult:
    verdict = classify_response(
        response.status_code, response.headers, response.content, expected_status=expected
    )
    detail = problem or verdict.message or f"status {response.status_code}"
    return SmokeCheckResult(
        name=f"setup: {step}",
        method=method,
        path=path,
        expected_status=expected,
        status=response.status_code,
        passed=False,
        error_kind=verdict.kind or ErrorKind.UNEXPECTED_STATUS.value,
        trace_id=verdict.trace_id,
        message=f"setup ({step}) answered {response.status_code}: {detail}",
    )


def _json_field(response: httpx.Response, name: str) -> object:
    try:
        document = response.json()
    except ValueError:
        return None
    return document.get(name) if isinstance(document, dict) else None


async def _run_check(
    check: SmokeCheck,
    setup: _Setup,
    clients: _ClientFactory,
    recorder: LatencyRecorder,
    clock: RunClock,
) -> SmokeCheckResult:
    used = placeholders_in(check)
    blocked = setup.failure is not None and (
        check.auth or "item_id" in used or bool(used & {"email", "password"})
    )
    if blocked and setup.failure is not None:
        # The check cannot mean anything without its account or item: report the setup's failure
        # against it rather than send a request that is bound to fail for another reason.
        return setup.failure.model_copy(
            update={
                "name": check.name,
                "method": check.method,
                "path": check.path,
                "expected_status": check.expect_status,
            }
        )
    values = {
        "email": setup.email,
        "password": setup.password,
        "new_email": f"smoke-{secrets.token_hex(6)}@loadkit.test",
        "item_id": str(setup.item_ids.get(check.name, "")),
    }
    path = _fill(check.path, values)
    body = _fill_json(check.json_body, values)
    headers = {"Authorization": f"Bearer {setup.token}"} if check.auth and setup.token else {}
    endpoint = f"{check.method} {check.path}"
    async with clients.new() as client:
        started = time.perf_counter()
        try:
            response = await client.request(check.method, path, json=body, headers=headers or None)
        except httpx.HTTPError as exc:
            latency = time.perf_counter() - started
            kind = classify_httpx_error(exc)
            message = describe_error(exc)
            recorder.record(
                endpoint=endpoint,
                latency_s=latency,
                end=clock.now(),
                error_kind=kind,
                message=message,
            )
            return SmokeCheckResult(
                name=check.name,
                method=check.method,
                path=path,
                expected_status=check.expect_status,
                passed=False,
                latency_ms=round(latency * 1000.0, 3),
                error_kind=kind,
                message=message,
            )
        latency = time.perf_counter() - started
    verdict = classify_response(
        response.status_code,
        response.headers,
        response.content,
        expected_status=check.expect_status,
    )
    recorder.record(
        endpoint=endpoint,
        latency_s=latency,
        end=clock.now(),
        error_kind=verdict.kind,
        status=response.status_code,
        trace_id=verdict.trace_id,
        message=verdict.message,
    )
    return SmokeCheckResult(
        name=check.name,
        method=check.method,
        path=path,
        expected_status=check.expect_status,
        status=response.status_code,
        passed=verdict.ok,
        latency_ms=round(latency * 1000.0, 3),
        error_kind=verdict.kind,
        trace_id=verdict.trace_id,
        message=verdict.message,
    )


def _fill(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _fill_json(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, values)
    if isinstance(value, dict):
        return {k: _fill_json(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_json(v, values) for v in value]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
