"""The breakdown: totals, kinds, endpoints, top offenders, the time window, pool lines, and the
join of the client's errors (results files) with the server's (its log)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loadkit.exceptions import ConfigError, InputError
from loadkit.logs.breakdown import (
    MAX_GROUPS,
    OTHER_ENDPOINTS,
    BreakdownBuilder,
    ErrorBreakdown,
    epoch_of,
    parse_time_bound,
)
from loadkit.logs.join import JOIN_SLACK_S, ClientView
from loadkit.measure.results import LockAuditResults
from tests.loadkit.crafted_errors import LOGIN, T0, client_results, request, ts


def build(lines: list[dict[str, Any]], **kwargs: Any) -> ErrorBreakdown:
    builder = BreakdownBuilder(**{k: v for k, v in kwargs.items() if k != "top"})
    builder.add_all(lines)
    return builder.result(top=kwargs.get("top", 5))


def test_totals_kinds_endpoints_and_top_offenders() -> None:
    lines = (
        [
            request("/api/auth/login", at=i, status=503, kind="storage_lock_timeout")
            for i in range(6)
        ]
        + [
            request("/api/auth/login", at=10 + i, status=401, kind="invalid_credentials")
            for i in range(3)
        ]
        + [
            request("/api/items", method="GET", at=i, status=503, kind="storage_lock_timeout")
            for i in range(2)
        ]
        + [request("/api/items", method="GET", at=i) for i in range(9)]
    )
    result = build(lines, top=2)
    assert (result.totals.requests, result.totals.errors) == (20, 11)
    assert result.totals.error_rate == pytest.approx(11 / 20)
    assert [(k.kind, k.count) for k in result.by_kind] == [
        ("storage_lock_timeout", 8),
        ("invalid_credentials", 3),
    ]
    lock = result.by_kind[0]
    assert lock.share_of_errors == pytest.approx(8 / 11)
    assert lock.share_of_requests == pytest.approx(8 / 20)
    assert lock.endpoints == 2
    assert lock.status_codes == {"503": 8}
    assert [(e.endpoint, e.requests, e.errors) for e in result.by_endpoint] == [
        ("POST /api/auth/login", 9, 9),
        ("GET /api/items", 11, 2),
    ]
    assert result.by_endpoint[0].top_kind == "storage_lock_timeout"
    assert [(o.endpoint, o.kind, o.count) for o in result.top] == [
        ("POST /api/auth/login", "storage_lock_timeout", 6),
        ("POST /api/auth/login", "invalid_credentials", 3),
    ]
    assert result.groups == 3
    first = result.top[0]
    assert first.first_seen == "2026-11-28T12:00:00.000Z"
    assert first.last_seen == "2026-11-28T12:00:05.000Z"
    assert first.example_trace_id == lines[0]["trace_id"]
    assert first.example_message == "storage_lock_timeout message"
    assert first.status_codes == {"503": 6}


def test_p95_duration_comes_from_the_group_histogram() -> None:
    lines = [
        request("/api/auth/login", at=i, status=503, kind="storage_lock_timeout", duration_ms=d)
        for i, d in enumerate([*([100.0] * 19), 2000.0])
    ]
    [offender] = build(lines).top
    # Nearest rank: the 19th of 20 values is the 95th percentile; HDR keeps 3 digits.
    assert offender.p95_ms == pytest.approx(100.0, rel=1e-3)
    assert offender.max_ms == pytest.approx(2000.0, rel=1e-3)


def test_without_success_lines_there_is_no_error_rate() -> None:
    # The service logs successes at debug by default: a log of errors only must not claim 100 %.
    lines = [
        request("/api/auth/login", at=i, status=401, kind="invalid_credentials") for i in range(4)
    ]
    result = build(lines)
    assert result.totals.errors == 4
    assert result.totals.error_rate is None
    assert result.by_kind[0].share_of_requests is None
    assert result.by_endpoint[0].error_rate is None


def test_error_status_without_a_kind_is_an_unexpected_status() -> None:
    result = build([request("/api/items", status=502)])
    assert result.top[0].kind == "unexpected_status"


def test_a_request_the_service_never_answered_is_an_error_not_a_success() -> None:
    """Status 0, no kind: cancelled at the end of the shutdown grace, or the client left."""
    result = build([request("/api/items", status=0), request("/api/items", at=1)])
    assert result.totals.errors == 1
    assert result.top[0].kind == "no_response"


def test_since_and_until_keep_only_lines_in_the_window() -> None:
    lines = [request("/api/auth/login", at=i, status=503, kind="overloaded") for i in range(10)]
    lines.append({"event": "request", "endpoint": "/x", "status_code": 500, "ts": "garbage"})
    result = build(lines, since=T0 + 3, until=T0 + 6)
    assert result.totals.errors == 4
    assert result.inputs.outside_window == 7
    assert result.since == "2026-11-28T12:00:03.000Z"


def test_request_lines_without_endpoint_or_status_are_counted_as_incomplete() -> None:
    result = build(
        [
            {"event": "request", "ts": ts(0), "status_code": 500},
            {"event": "request", "ts": ts(0), "endpoint": "/x", "status_code": "500"},
            {"event": "service_started", "ts": ts(0)},
            request("/api/items", status=404, kind="not_found"),
        ]
    )
    assert result.inputs.incomplete == 2
    assert result.inputs.other_events == 1
    assert result.totals.errors == 1


def test_pool_lines_are_summarised_with_saturation() -> None:
    pool = [
        {"event": "db_pool", "ts": ts(0), "size": 5, "max_size": 15, "checked_out": 3,
         "checked_in": 2, "overflow": 0, "waited": 0, "timed_out": 0},
        {"event": "db_pool", "ts": ts(30), "size": 5, "max_size": 15, "checked_out": 15,
         "checked_in": 0, "overflow": 10, "waited": 7, "timed_out": 2},
        {"event": "db_pool", "ts": ts(60), "size": 5, "max_size": 15, "checked_out": 15,
         "checked_in": 0, "overflow": 10, "waited": 0, "timed_out": 0},
    ]  # fmt: skip
    result = build(pool)
    assert result.pool is not None
    assert (result.pool.lines, result.pool.max_in_use, result.pool.max_waited) == (3, 15, 7)
    assert (result.pool.max_size, result.pool.max_overflow) == (15, 10)
    assert (result.pool.total_waited, result.pool.total_timed_out) == (7, 2)
    assert result.pool.saturated_lines == 2
    assert result.pool.first_saturated == "2026-11-28T12:00:30.000Z"
    assert result.pool.last_saturated == "2026-11-28T12:01:00.000Z"
    assert build([request("/x")]).pool is None


def test_groups_are_capped_so_memory_stays_flat() -> None:
    # Raw paths instead of route templates would make a group per path: they are lumped.
    lines = [
        request(f"/raw/{i}", method="GET", status=404, kind="not_found")
        for i in range(MAX_GROUPS + 50)
    ]
    result = build(lines)
    assert result.groups == MAX_GROUPS + 1
    other = [o for o in build(lines, top=MAX_GROUPS + 1).top if o.endpoint == OTHER_ENDPOINTS]
    assert other[0].count == 50


def test_parse_time_bound() -> None:
    now = T0 + 3600
    assert parse_time_bound("2026-11-28T12:00:00Z", now=now) == T0
    assert parse_time_bound("2026-11-28T12:00:00", now=now) == T0  # UTC, as the service logs
    assert parse_time_bound("2026-11-28T13:00:00+01:00", now=now) == T0
    assert parse_time_bound("15m", now=now) == now - 900
    assert parse_time_bound("2h", now=now) == now - 7200
    assert parse_time_bound("1d", now=now) == now - 86400
    with pytest.raises(ConfigError, match=r"--until 'yesterday': not a time"):
        parse_time_bound("yesterday", now=now, option="--until")


def test_epoch_of_accepts_iso_and_numbers() -> None:
    assert epoch_of("2026-11-28T12:00:00Z") == T0
    assert epoch_of(T0) == T0
    assert epoch_of("nope") is None
    assert epoch_of(True) is None


# --- the join with the client's view --------------------------------------------------------


def test_counts_join_puts_errors_the_server_never_logged_apart() -> None:
    results = client_results(
        [(LOGIN, "storage_lock_timeout", 503, f"lock-{i}") for i in range(5)]
        + [(LOGIN, "timeout", None, None) for _ in range(3)]
        + [(LOGIN, "connect_error", None, None) for _ in range(2)],
        requests=50,
    )
    # The server logged 4 of the 5 lock timeouts (one was answered by a proxy, say), a lock
    # timeout outside the run's window, and another run's not_found inside it.
    log = [
        request("/api/auth/login", at=1 + i, status=503, kind="storage_lock_timeout",
                trace_id=f"lock-{i}")
        for i in range(4)
    ] + [
        request("/api/auth/login", at=10 + JOIN_SLACK_S + 60, status=503,
                kind="storage_lock_timeout"),
        request("/api/items", method="GET", at=3, status=404, kind="not_found"),
    ]  # fmt: skip
    comparison = build(log, client=ClientView([results])).client
    assert comparison is not None
    rows = {(r.endpoint, r.kind): r for r in comparison.rows}
    lock = rows[(LOGIN, "storage_lock_timeout")]
    assert (lock.client, lock.server, lock.client_only, lock.server_only) == (5, 4, 1, 0)
    assert not lock.client_side_kind
    timeout = rows[(LOGIN, "timeout")]
    assert (timeout.client, timeout.server, timeout.client_only) == (3, 0, 3)
    assert timeout.client_side_kind
    assert rows[(LOGIN, "connect_error")].client_only == 2
    other = rows[("GET /api/items", "not_found")]
    assert (other.client, other.server, other.server_only) == (0, 1, 1)
    assert comparison.client_only == 1 + 3 + 2
    assert comparison.server_only == 1
    assert comparison.server_errors_in_window == 5
    assert (comparison.requests, comparison.errors) == (50, 10)


def test_trace_ids_pair_requests_across_the_two_views() -> None:
    group_trace = "lock-0"
    results = client_results(
        [
            (LOGIN, "storage_lock_timeout", 503, group_trace),
            (LOGIN, "timeout", None, "slow-1"),
            ("GET /api/auth/me", "unexpected_status", 502, "proxy-1"),
            ("GET /api/items", "timeout", None, "late-ok"),
        ],
        requests=20,
    )
    log = [
        request("/api/auth/login", at=1, status=503, kind="storage_lock_timeout",
                trace_id=group_trace),
        # the client timed out; the server logged the request later, as a lock timeout
        request("/api/auth/login", at=3, status=503, kind="storage_lock_timeout",
                trace_id="slow-1"),
        # the server answered this one fine, after the client had given up
        request("/api/items", method="GET", at=4, status=200, trace_id="late-ok"),
        # "proxy-1" never reached the service: not in its log
    ]  # fmt: skip
    comparison = build(log, client=ClientView([results])).client
    assert comparison is not None
    rows = {(r.endpoint, r.kind): r for r in comparison.rows}
    assert rows[(LOGIN, "storage_lock_timeout")].traces.same_kind == 1
    slow = rows[(LOGIN, "timeout")].traces
    assert slow.other_kinds == {"storage_lock_timeout": 1}
    assert slow.example == "slow-1: server logged storage_lock_timeout (503)"
    assert rows[("GET /api/items", "timeout")].traces.ok_on_server == 1
    proxy = rows[("GET /api/auth/me", "unexpected_status")].traces
    assert (proxy.sampled, proxy.not_logged) == (1, 1)
    assert comparison.traces_sampled == 4
    assert comparison.traces_not_logged == 1


def test_a_trace_id_sample_per_group_is_used_when_the_results_carry_one() -> None:
    results = client_results([(LOGIN, "timeout", None, "t-0")], requests=5)
    group = results.errors[0].model_copy(update={"trace_ids": ["t-0", "t-1", "t-2"], "count": 3})
    results = results.model_copy(update={"errors": [group]})
    log = [request("/api/auth/login", at=2, status=503, kind="overloaded", trace_id="t-1")]
    comparison = build(log, client=ClientView([results])).client
    assert comparison is not None
    [row] = [r for r in comparison.rows if r.kind == "timeout"]
    assert row.traces.sampled == 3  # the example is also the sample's first: counted once
    assert row.traces.other_kinds == {"overloaded": 1}
    assert row.traces.not_logged == 2


def test_the_join_says_when_log_and_runs_do_not_overlap() -> None:
    results = client_results([(LOGIN, "timeout", None, None)], requests=5)
    log = [request("/api/auth/login", at=86_400, status=503, kind="overloaded")]
    comparison = build(log, client=ClientView([results])).client
    assert comparison is not None
    assert any("do not overlap" in note for note in comparison.notes)
    assert any("no success lines" in note for note in comparison.notes)


def test_lock_audit_results_cannot_be_joined() -> None:
    audit = LockAuditResults(
        target="service", started_at=datetime.now(tz=UTC), duration_s=1.0, files_checked=3,
        violations=0,
    )  # fmt: skip
    with pytest.raises(InputError, match="lock-audit results file"):
        ClientView([audit])


def test_path_parameter_names_do_not_split_a_route() -> None:
    # A Locust scenario names the route /api/items/{id}; the service logs /api/items/{item_id}.
    results = client_results(
        [("GET /api/items/{id}", "storage_lock_timeout", 503, f"i-{n}") for n in range(3)],
        requests=10,
    )
    log = [
        request("/api/items/{item_id}", method="GET", at=1 + n, status=503,
                kind="storage_lock_timeout", trace_id=f"i-{n}")
        for n in range(3)
    ]  # fmt: skip
    comparison = build(log, client=ClientView([results])).client
    assert comparison is not None
    [row] = comparison.rows
    assert (row.endpoint, row.client, row.server, row.client_only) == (
        "GET /api/items/{item_id}",
        3,
        3,
        0,
    )
    # Every sampled trace id pairs with its log line through the renamed route.
    assert (row.traces.sampled, row.traces.same_kind) == (3, 3)


def test_injected_faults_and_other_events_are_reported() -> None:
    fault = {
        "fault": "error", "paths": ["/api/items"], "share": 0.1, "kind": "db_pool_exhausted",
        "event": "fault_injection_enabled", "level": "warning", "ts": ts(0),
    }  # fmt: skip
    result = build(
        [
            {"event": "service_started", "ts": ts(0)},
            fault,
            {"event": "unhandled_exception", "ts": ts(1)},
            {"event": "unhandled_exception", "ts": ts(2)},
        ]
    )
    assert result.faults == [
        "error: paths /api/items, share 0.1, kind db_pool_exhausted (from 2026-11-28T12:00:00Z)"
    ]
    assert result.events == {
        "unhandled_exception": 2,
        "fault_injection_enabled": 1,
        "service_started": 1,
    }


def test_odd_values_in_log_lines_never_crash_the_breakdown() -> None:
    # Logs are evidence from elsewhere: any JSON value can sit in any field.
    results = client_results([(LOGIN, "timeout", None, "t-0")], requests=2)
    odd: list[dict[str, Any]] = [
        {"event": "request", "endpoint": "/x", "status_code": 500, "ts": 1e20},
        {"event": "request", "endpoint": "/x", "status_code": 500, "ts": -1e15},
        {"event": "request", "endpoint": "/x", "status_code": 500, "ts": "0001-01-01T00:00:00Z"},
        {"event": "request", "endpoint": "/x", "status_code": 500, "trace_id": ["t-0"]},
        {"event": "request", "endpoint": "/x", "status_code": 200, "trace_id": {"a": 1}},
        {"event": "request", "endpoint": "/x", "status_code": 500, "error_kind": {"a": 1},
         "duration_ms": "slow", "message": 5},
        {"event": "request", "endpoint": "/x", "status_code": 503, "duration_ms": 1e30},
        {"event": "db_pool", "size": "5", "checked_out": True, "waited": 1e40},
        {"event": "fault_injection_enabled", "fault": {"x": 1}, "ts": 5},
    ]  # fmt: skip
    result = build(odd, client=ClientView([results]))
    assert (result.totals.requests, result.totals.errors) == (7, 6)
    assert result.inputs.incomplete == 0
