"""GET /metrics: Prometheus text that prometheus-client's own parser reads, and that moves."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.service.engines_api import auth_headers


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by (name, labels)."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_metrics_parse_and_move_when_requests_are_made(client: httpx.AsyncClient) -> None:
    before = await client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    families = {family.name for family in text_string_to_metric_families(before.text)}
    assert {
        "engines_http_requests",
        "engines_http_request_duration_seconds",
        "engines_http_requests_in_flight",
        "engines_storage_lock_wait_seconds",
        "engines_storage_lock_hold_seconds",
        "engines_db_pool_size",
        "engines_db_pool_max_size",
        "engines_db_pool_checked_out",
        "engines_db_pool_checked_in",
        "engines_db_pool_overflow",
        "engines_db_pool_waits",
    } <= families

    headers = await auth_headers(client, "metrics@example.org")
    for _ in range(3):
        assert (await client.get("/api/items/999", headers=headers)).status_code == 404
    after = (await client.get("/metrics")).text

    item_404 = {"method": "GET", "endpoint": "/api/items/{item_id}", "status": "404"}
    assert value(after, "engines_http_requests_total", **item_404, error_kind="not_found") == 3
    assert (
        value(before.text, "engines_http_requests_total", **item_404, error_kind="not_found") == 0
    )
    login_ok = {"method": "POST", "endpoint": "/api/auth/login", "status": "200", "error_kind": ""}
    assert value(after, "engines_http_requests_total", **login_ok) == 1
    duration_count = "engines_http_request_duration_seconds_count"
    assert value(after, duration_count, method="GET", endpoint="/api/items/{item_id}") == 3
    # The storage lock was taken by login and by the item lookups; nothing waited long.
    assert value(after, "engines_storage_lock_hold_seconds_count", endpoint="login") >= 1
    assert value(after, "engines_storage_lock_wait_seconds_count", endpoint="get_item") == 3
    # The scrape itself is in flight while it is rendered; the pool has opened a connection.
    assert value(after, "engines_http_requests_in_flight") == 1
    assert value(after, "engines_db_pool_checked_in") >= 1
    assert value(after, "engines_db_pool_size") == 5


async def test_unknown_methods_and_paths_keep_labels_bounded(client: httpx.AsyncClient) -> None:
    await client.request("BREW", "/coffee/42")
    await client.get("/no/such/path/1")
    text = (await client.get("/metrics")).text
    endpoints = {
        labels for (name, labels) in samples(text) if name == "engines_http_requests_total"
    }
    seen = [dict(labels) for labels in endpoints]
    assert {
        "method": "OTHER",
        "endpoint": "unmatched",
        "status": "404",
        "error_kind": "not_found",
    } in seen
    assert not any("42" in d["endpoint"] or "/1" in d["endpoint"] for d in seen)
