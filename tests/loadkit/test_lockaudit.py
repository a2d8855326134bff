"""The lock audit analyzer: each rule on its fixture, the original bug, suppressions, parsing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadkit.config import LockAuditConfig
from loadkit.exceptions import InputError
from loadkit.lockaudit.audit import AuditSummary, FileAudit, LockAuditor, audit_source

FIXTURES = Path(__file__).parent / "fixtures" / "lockaudit"
EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>(?:LK\d{3}\s*)+)$")


def audit_fixture(name: str, config: LockAuditConfig | None = None) -> FileAudit:
    path = FIXTURES / name
    return audit_source(path.read_text(), path=name, config=config or LockAuditConfig())


def expected(name: str) -> set[tuple[int, str]]:
    """(line, code) for every ``# expect: LKxxx`` marker in a fixture."""
    found: set[tuple[int, str]] = set()
    for number, line in enumerate((FIXTURES / name).read_text().splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            found.update((number, code) for code in match.group("codes").split())
    return found


def reported(audit: FileAudit) -> set[tuple[int, str]]:
    return {(f.line, f.code) for f in audit.findings}


def line_of(name: str, needle: str) -> int:
    lines = (FIXTURES / name).read_text().splitlines()
    matches = [number for number, line in enumerate(lines, start=1) if needle in line]
    assert len(matches) == 1, f"{needle!r} must occur once in {name}: {matches}"
    return matches[0]


@pytest.mark.parametrize(
    "fixture",
    ["lk001_slow_calls.py", "lk002_await.py", "lk003_timeout.py", "lk004_finally.py"],
)
def test_each_rule_reports_exactly_the_marked_lines(fixture: str) -> None:
    audit = audit_fixture(fixture)
    assert expected(fixture), "the fixture marks no expected finding"
    details = "\n".join(f"{f.line}: {f.code} {f.message}" for f in audit.findings)
    assert reported(audit) == expected(fixture), details


def test_the_original_bug_is_caught_on_the_right_lines() -> None:
    audit = audit_fixture("original_bug.py")
    lock_line = line_of("original_bug.py", "async with storage_lock:")
    query_line = line_of("original_bug.py", "await session.execute(")
    hash_line = line_of("original_bug.py", "bcrypt.checkpw(")
    messages = {(f.line, f.code): f.message for f in audit.findings}
    assert set(messages) == {
        (lock_line, "LK003"),
        (query_line, "LK001"),
        (hash_line, "LK001"),
    }
    assert messages[(hash_line, "LK001")] == (
        f"bcrypt.checkpw() called while holding lock `storage_lock` (acquired at line {lock_line})"
    )
    assert messages[(query_line, "LK001")].startswith("session.execute() called while holding")
    assert all(f.lock_line == lock_line for f in audit.findings if f.code == "LK001")


def test_the_reacquire_pattern_passes() -> None:
    assert audit_fixture("reacquire.py").findings == ()


def test_a_slow_helper_is_named_with_the_call_inside_it() -> None:
    audit = audit_fixture("lk001_slow_calls.py")
    line = line_of("lk001_slow_calls.py", "refresh_from(url)  # expect")
    (finding,) = [f for f in audit.findings if f.line == line]
    inner = line_of("lk001_slow_calls.py", "return hash_slowly(httpx.get(url).content)")
    assert finding.message.startswith("refresh_from() called while holding lock `storage_lock`")
    assert finding.message.endswith(f"it calls httpx.get() at line {inner}")


def test_storage_helper_callables_count_from_the_helper_call() -> None:
    audit = audit_fixture("lk001_slow_calls.py")
    call = line_of("lk001_slow_calls.py", "await storage.with_storage(verify_all)")
    body = line_of("lk001_slow_calls.py", "return all(bcrypt.checkpw")
    (finding,) = [f for f in audit.findings if f.line == body]
    assert finding.lock_line == call
    assert "holding storage lock" in finding.message


def test_the_lockfile_reader_is_a_lock_once_the_exclusion_is_removed() -> None:
    config = LockAuditConfig(lock_exclude_patterns=())
    audit = audit_fixture("lk001_slow_calls.py", config)
    line = line_of("lk001_slow_calls.py", "with lockfile_reader(path) as source:")
    assert (line, "LK003") in reported(audit)
    assert (line + 1, "LK001") in reported(audit)


def test_await_allow_list_exempts_a_call() -> None:
    config = LockAuditConfig(await_allow=("asyncio.sleep",))
    audit = audit_fixture("lk002_await.py", config)
    line = line_of("lk002_await.py", "await asyncio.sleep(0)  # expect")
    assert (line, "LK002") not in reported(audit)
    assert reported(audit) == expected("lk002_await.py") - {(line, "LK002")}


def test_suppression_with_a_reason_hides_the_finding_and_counts_it() -> None:
    audit = audit_fixture("suppressions.py")
    with_reason = line_of("suppressions.py", "fault injection holds the lock on purpose")
    assert audit.suppressed == 1
    assert all(f.line != with_reason for f in audit.findings)


def test_suppression_without_a_reason_suppresses_nothing_and_is_reported() -> None:
    audit = audit_fixture("suppressions.py")
    lines = (FIXTURES / "suppressions.py").read_text().splitlines()
    bare = next(n for n, text in enumerate(lines, 1) if text.endswith("ignore[LK001]"))
    codes = sorted(f.code for f in audit.findings if f.line == bare)
    assert codes == ["LK001", "LK900"]
    (problem,) = [f for f in audit.findings if f.line == bare and f.code == "LK900"]
    assert "has no reason" in problem.message


def test_suppressions_naming_other_or_unknown_codes_do_not_hide_findings() -> None:
    audit = audit_fixture("suppressions.py")
    other = line_of("suppressions.py", "names another code")
    unknown = line_of("suppressions.py", "LK042")
    malformed = line_of("suppressions.py", "skip this one")
    assert {(other, "LK001"), (unknown, "LK001"), (unknown, "LK900")} <= reported(audit)
    assert {(malformed, "LK001"), (malformed, "LK900")} <= reported(audit)
    assert (other, "LK900") not in reported(audit)
    # The directive inside a string literal is not a comment, so it is neither used nor wrong.
    assert line_of("suppressions.py", "NOT_A_COMMENT") not in {f.line for f in audit.findings}


def test_a_syntax_error_names_the_file_and_line() -> None:
    source = "import asyncio\n\nasync def broken(:\n    pass\n"
    with pytest.raises(InputError, match=r"^pkg/broken\.py:3:\d+: cannot parse"):
        audit_source(source, path="pkg/broken.py", config=LockAuditConfig())


def test_patterns_and_aliases() -> None:
    source = (
        "import asyncio\n"
        "import bcrypt as bc\n"
        "from time import sleep\n"
        "non_blocking_flag = True\n"
        "class Store:\n"
        "    _guard: asyncio.Lock\n"
        "    async def run(self, security) -> None:\n"
        "        async with asyncio.timeout(1), self._guard:\n"
        "            bc.hashpw(b'x', b'y')\n"
        "            sleep(1)\n"
        "            security.hash_password('x')\n"
        "            self.requests.append(1)\n"
    )
    audit = audit_source(source, path="m.py", config=LockAuditConfig())
    assert reported(audit) == {(9, "LK001"), (10, "LK001"), (11, "LK001")}
    assert audit.findings[0].message.startswith(
        "bc.hashpw() called while holding lock `self._guard`"
    )


def test_summary_counts_files_violations_and_suppressions() -> None:
    auditor = LockAuditor(LockAuditConfig())
    audits = [
        auditor.audit_source((FIXTURES / n).read_text(), path=n)
        for n in ("original_bug.py", "reacquire.py", "suppressions.py")
    ]
    summary = AuditSummary.of(audits)
    assert summary.files_checked == 3
    assert summary.files_with_findings == 2
    assert summary.suppressed == 1
    assert summary.violations == len(audits[0].findings) + len(audits[2].findings)


def test_storage_callables_by_method_and_partial_and_async() -> None:
    source = (
        "import asyncio\n"  # 1
        "import functools\n"  # 2
        "import bcrypt\n"  # 3
        "class Handler:\n"  # 4
        "    def _read(self, cache):\n"  # 5
        "        return bcrypt.checkpw(b'x', cache['h'])\n"  # 6
        "    async def run(self, storage) -> None:\n"  # 7
        "        await storage.with_storage(self._read)\n"  # 8
        "        await storage.with_storage(functools.partial(fill, 1))\n"  # 9
        "        await storage.with_storage(load)\n"  # 10
        "def fill(n, cache):\n"  # 11
        "    cache['n'] = open('n').read()\n"  # 12
        "async def load(cache):\n"  # 13
        "    await asyncio.sleep(0)\n"  # 14
    )
    audit = audit_source(source, path="m.py", config=LockAuditConfig())
    assert reported(audit) == {(6, "LK001"), (12, "LK001"), (14, "LK002")}
    assert {f.line: f.lock_line for f in audit.findings} == {6: 8, 12: 9, 14: 10}


def test_the_projects_own_helpers_and_extended_patterns_are_slow() -> None:
    source = (
        "async def login(services, storage_lock, body) -> None:\n"
        "    async with services.timeout(1), storage_lock:\n"
        "        services.tokens.issue(user_id=1, email=body.email)\n"
        "        services.mailer.send_welcome(body.email)\n"
    )
    config = LockAuditConfig(timeout_wrappers=("*.timeout",))
    assert reported(audit_source(source, path="m.py", config=config)) == {(3, "LK001")}
    config = LockAuditConfig(
        timeout_wrappers=("*.timeout",), extend_slow_call_patterns=("*.send_*",)
    )
    assert reported(audit_source(source, path="m.py", config=config)) == {
        (3, "LK001"),
        (4, "LK001"),
    }
