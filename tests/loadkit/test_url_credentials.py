"""A password in a target URL is never recorded or shown: the results' target, what the
terminal and the HTML report print from it, and the errors naming the target mask it."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.engines.target import parse_target
from loadkit.exceptions import ConfigError
from loadkit.measure.recorder import LatencyRecorder
from loadkit.measure.results import LoadResults, read_results, write_results
from loadkit.url_credentials import has_password, mask_password, unmask, userinfo


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://bob:Pa55word@host", "http://bob:***@host"),
        ("https://bob:p@ss:w%2Frd@h:8443/v2?q=a:b@c", "https://bob:***@h:8443/v2?q=a:b@c"),
        ("http://:secret@h/", "http://:***@h/"),
        ("http://bob@h/", "http://bob@h/"),
        ("http://h:8080/a:b@c", "http://h:8080/a:b@c"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_the_password_alone_is_masked_the_rest_kept_as_written(url: str, shown: str) -> None:
    assert mask_password(url) == shown


def test_results_never_record_the_password_of_their_target(tmp_path: Path) -> None:
    recorder = LatencyRecorder(start=1_800_000_000.0)
    recorder.record(endpoint="GET /x", latency_s=0.01, end=1_800_000_000.5)
    recorder.finish(end=1_800_000_001.0)
    results = LoadResults(
        target="http://bob:Pa55word@api.test/v2", config={}, **recorder.traffic_fields()
    )
    assert results.target == "http://bob:***@api.test/v2"
    path = tmp_path / "r.json"
    write_results(path, results)
    assert b"Pa55word" not in path.read_bytes()
    # A file written before masking is masked when read, so reports never show it either.
    path.write_bytes(path.read_bytes().replace(b"bob:***@", b"bob:Pa55word@"))
    assert read_results(path).target == "http://bob:***@api.test/v2"


def test_a_refused_target_is_named_without_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_target("http://bob:Pa55word@[::1/x")
    assert "http://bob:***@[::1/x" in str(refused.value) and "Pa55" not in str(refused.value)


def test_a_masked_form_shown_stands_for_the_url_it_masked_and_nothing_else() -> None:
    known = ["http://bob:Pa55word@api.test/v2", "http://eve:other@api.test/v2"]
    assert has_password(known[0]) and not has_password("http://bob:***@api.test/v2")
    assert not has_password("http://bob@api.test/v2")
    assert userinfo(known[0]) == ("bob:Pa55word@", "bob:***@")
    assert userinfo("http://bob:***@api.test") is None and userinfo("http://h/") is None
    assert unmask("http://bob:***@api.test/v2", known) == known[0]
    assert unmask("http://eve:***@api.test/v2", known) == known[1]
    # Another host, port, scheme or user, or a password typed in: used as written.
    assert unmask("http://bob:***@elsewhere/v2", known) == "http://bob:***@elsewhere/v2"
    assert unmask("http://bob:***@api.test:81/v2", known) == "http://bob:***@api.test:81/v2"
    assert unmask("https://bob:***@api.test/v2", known) == "https://bob:***@api.test/v2"
    assert unmask("http://al:***@api.test/v2", known) == "http://al:***@api.test/v2"
    assert unmask("http://bob:new@api.test/v2", known) == "http://bob:new@api.test/v2"


def test_a_masked_form_edited_past_its_host_keeps_that_users_password() -> None:
    # A user who adds a path or a query to the host the web UI showed masked tests that path
    # with the password loadkit was given, never with a literal `***` (every request a 401).
    known = ["http://bob:p@ss:w%2Frd@api.test:8000", "http://eve:other@api.test:8000/v1"]
    assert (
        unmask("http://bob:***@api.test:8000/v2", known)
        == "http://bob:p@ss:w%2Frd@api.test:8000/v2"
    )
    assert unmask("http://eve:***@API.test:8000/v2?x=1", known) == (
        "http://eve:other@API.test:8000/v2?x=1"
    )
    assert unmask("http://eve:***@api.test:8000", known) == "http://eve:other@api.test:8000"
    # The last host the UI had for that user wins, as for a form left unchanged.
    again = [*known, "http://bob:newer@api.test:8000/x"]
    assert unmask("http://bob:***@api.test:8000/v3", again) == "http://bob:newer@api.test:8000/v3"
    assert unmask("http://bob:***@api.test:bad/v2", known) == "http://bob:***@api.test:bad/v2"
