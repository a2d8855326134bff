"""The lock-safety rules, applied to one module's syntax tree (stdlib ``ast``: nothing is run).

A *locked region* is code that runs while a lock is held:

- the body of ``with L:`` / ``async with L:`` where ``L`` is a lock, by name pattern or because the
  module assigns it from a lock constructor (``threading.Lock()``, ``asyncio.Lock()``, ...);
- the statements from ``L.acquire()`` up to ``L.release()``, in source order;
- the body of the callable passed to a storage helper (``with_storage(lambda cache: ...)``): a
  lambda, or a function of the same module passed by name.

In those regions the rules look for slow calls (LK001) and suspension points (LK002); everywhere
they look for lock acquisitions without a timeout (LK003) and ``acquire()`` calls whose
``release()`` is not in a ``finally`` (LK004). The analysis is per module and flow-insensitive
beyond source order: it is a linter, so it prefers a finding a reviewer can suppress with a reason
over a freeze nobody saw coming.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from loadkit.config import LockAuditConfig
from loadkit.lockaudit.names import (
    FunctionNode,
    ModuleIndex,
    Patterns,
    dotted_name,
    last_component,
)

SLOW_CALL = "LK001"
AWAIT_UNDER_LOCK = "LK002"
NO_TIMEOUT = "LK003"
RELEASE_NOT_IN_FINALLY = "LK004"
BAD_SUPPRESSION = "LK900"

RULES: dict[str, str] = {
    SLOW_CALL: "slow call (CPU or I/O work) while holding a lock",
    AWAIT_UNDER_LOCK: "await while holding a lock",
    NO_TIMEOUT: "lock acquired without a timeout",
    RELEASE_NOT_IN_FINALLY: "acquire() whose release() is not in a finally",
    BAD_SUPPRESSION: "suppression comment without a reason, or naming an unknown code",
}
"""Every code the audit reports, with what it means."""

MAX_CALL_DEPTH = 3
"""How deep calls to functions of the same module are followed when looking for slow work."""

_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@dataclass(frozen=True, slots=True)
class Finding:
    """One lock-safety problem at a place in a source file (line and column are 1-based)."""

    path: str
    line: int
    col: int
    code: str
    message: str
    lock_line: int | None = None


# --- the checker ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Held:
    """A lock held at some point of the code: its name, how messages call it, where it was taken."""

    name: str
    label: str
    line: int


@dataclass(slots=True)
class _Scope:
    """The function (or module) whose code is being checked."""

    function: FunctionNode | None
    class_def: ast.ClassDef | None
    local_defs: dict[str, FunctionNode] = field(default_factory=dict)
    params: frozenset[str] = frozenset()
    in_helper: bool = False
    release_sites: _ReleaseSites | None = None


@dataclass(slots=True)
class _ReleaseSites:
    """Where one function releases locks."""

    in_finally: list[tuple[str, int, int]] = field(default_factory=list)
    """(lock name, first and last line of the try) for every ``L.release()`` in a ``finally``."""
    anywhere: list[tuple[str, int]] = field(default_factory=list)
    """(lock name, line) of every ``L.release()``."""


@dataclass(frozen=True, slots=True)
class _Release:
    """A ``L.release()`` seen in a statement."""

    name: str


_Effect = _Held | _Release
"""An acquire (the new hold) or a release, applied once the whole statement is checked."""


def own_nodes(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``nodes`` that runs with them (not inside nested defs, classes, lambdas)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPE_NODES):
            stack.extend(ast.iter_child_nodes(node))


class RuleSet:
    """The rules, compiled from a ``[lock_audit]`` configuration; reusable across modules."""

    def __init__(self, config: LockAuditConfig) -> None:
        self.config = config
        self.locks = Patterns(config.lock_patterns, ignore_case=True)
        self.not_locks = Patterns(config.lock_exclude_patterns, ignore_case=True)
        self.constructors = Patterns(config.lock_constructors)
        self.helpers = Patterns(config.storage_helpers)
        self.slow = Patterns((*config.slow_call_patterns, *config.extend_slow_call_patterns))
        self.await_allow = Patterns(config.await_allow)
        self.timeouts = Patterns(config.timeout_wrappers)

    def check(self, tree: ast.Module, *, path: str) -> list[Finding]:
        """Every finding in one parsed module, in source order, before suppressions."""
        return _ModuleChecker(self, tree, path).run()


class _ModuleChecker:
    def __init__(self, rules: RuleSet, tree: ast.Module, path: str) -> None:
        self.rules = rules
        self.tree = tree
        self.path = path
        self.index = ModuleIndex(tree, rules.constructors)
        self.findings: dict[tuple[int, int, str], Finding] = {}
        self._slow_memo: dict[int, tuple[str, int] | None] = {}
        self._regions_done: set[tuple[int, int]] = set()

    def run(self) -> list[Finding]:
        self._check_block(self.tree.body, [], self._scope(None, None), timed=False)
        for function in self.index.function_nodes:
            self._check_function(function, [])
        return sorted(self.findings.values(), key=lambda f: (f.line, f.col, f.code))

    # -- scopes --

    def _scope(self, function: FunctionNode | None, cls: ast.ClassDef | None) -> _Scope:
        scope = _Scope(function=function, class_def=cls)
        if function is not None:
            args = function.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            scope.params = frozenset(a.arg for a in every if a is not None)
            scope.in_helper = self.rules.helpers.match(function.name)
            scope.local_defs = self.index.local_defs.get(id(function), {})
        return scope

    def _release_sites(self, scope: _Scope) -> _ReleaseSites:
        """Where the scope releases locks; computed on its first acquire (most code has none)."""
        if scope.release_sites is not None:
            return scope.release_sites
        sites = _ReleaseSites()
        body = self.tree.body if scope.function is None else scope.function.body
        for node in own_nodes(body):
            if isinstance(node, ast.Try | ast.TryStar):
                end = node.end_lineno or node.lineno
                for inner in own_nodes(node.finalbody):
                    lock = self._release_target(inner)
                    if lock is not None:
                        sites.in_finally.append((lock, node.lineno, end))
            lock = self._release_target(node)
            if lock is not None:
                sites.anywhere.append((lock, getattr(node, "lineno", 0)))
        scope.release_sites = sites
        return sites

    def _check_function(self, function: FunctionNode, held: list[_Held]) -> None:
        scope = self._scope(function, self.index.class_of.get(id(function)))
        self._check_block(function.body, list(held), scope, timed=False)

    # -- statements --

    def _check_block(
        self, body: list[ast.stmt], held: list[_Held], scope: _Scope, *, timed: bool
    ) -> None:
        for stmt in body:
            self._check_stmt(stmt, held, scope, timed=timed)

    def _check_stmt(self, stmt: ast.stmt, held: list[_Held], scope: _Scope, *, timed: bool) -> None:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # Decorators run here; the body runs when called and is checked on its own.
            self._scan_all(stmt.decorator_list, held, scope, timed=timed)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            self._check_with(stmt, held, scope, timed=timed)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            self._check_block(stmt.body, held, scope, timed=timed)
            for handler in stmt.handlers:
                self._scan_all([handler.type] if handler.type else [], held, scope, timed=timed)
                self._check_block(handler.body, held, scope, timed=timed)
            self._check_block(stmt.orelse, held, scope, timed=timed)
            self._check_block(stmt.finalbody, held, scope, timed=timed)
        elif isinstance(stmt, ast.If | ast.While):
            self._scan_all([stmt.test], held, scope, timed=timed)
            self._check_block(stmt.body, held, scope, timed=timed)
            self._check_block(stmt.orelse, held, scope, timed=timed)
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            if isinstance(stmt, ast.AsyncFor) and held:
                shown = dotted_name(stmt.iter) or "(…)"
                self._report_await(stmt, f"async for over {shown}", held)
            self._scan_all([stmt.target, stmt.iter], held, scope, timed=timed)
            self._check_block(stmt.body, held, scope, timed=timed)
            self._check_block(stmt.orelse, held, scope, timed=timed)
        elif isinstance(stmt, ast.Match):
            self._scan_all([stmt.subject], held, scope, timed=timed)
            for case in stmt.cases:
                self._scan_all([case.guard] if case.guard else [], held, scope, timed=timed)
                self._check_block(case.body, held, scope, timed=timed)
        else:
            self._scan_all([stmt], held, scope, timed=timed)

    def _check_with(
        self, stmt: ast.With | ast.AsyncWith, held: list[_Held], scope: _Scope, *, timed: bool
    ) -> None:
        is_async = isinstance(stmt, ast.AsyncWith)
        keyword = "async with" if is_async else "with"
        pushed: list[_Held] = []
        for item in stmt.items:
            expr = item.context_expr
            name = dotted_name(expr.func if isinstance(expr, ast.Call) else expr)
            canonical = self.index.canonical(name) if name else ""
            arguments = _call_arguments(expr)
            if name and isinstance(expr, ast.Call) and self.rules.timeouts.match(name, canonical):
                # Items are entered in order: a timeout before the lock bounds the wait for it.
                self._scan_all(arguments, held, scope, timed=timed)
                timed = True
            elif name and isinstance(expr, ast.Call) and self.rules.helpers.match(name, canonical):
                self._scan_all(arguments, held, scope, timed=timed)
                pushed.append(_Held(name, "storage lock", stmt.lineno))
                held.append(pushed[-1])
            elif (lock := self._lock_name(expr)) is not None:
                self._scan_all(arguments, held, scope, timed=timed)
                if is_async and held:
                    self._report_await(stmt, f"async with {lock}", held)
                if not (timed or _has_timeout_keyword(expr) or scope.in_helper):
                    self._report(
                        stmt,
                        NO_TIMEOUT,
                        f"`{keyword} {lock}` waits for the lock without a timeout: wrap it in "
                        f"`{self._timeout_hint()}` or go through {self._helper_hint()}",
                    )
                pushed.append(_Held(lock, f"lock `{lock}`", stmt.lineno))
                held.append(pushed[-1])
            else:
                reported = self._scan_all([expr], held, scope, timed=timed)
                allowed = name is not None and self.rules.await_allow.match(name, canonical)
                if is_async and held and not reported and not allowed:
                    shown = f"{name}()" if isinstance(expr, ast.Call) else name
                    self._report_await(stmt, f"async with {shown or '(…)'}", held)
            if item.optional_vars is not None:
                self._scan_all([item.optional_vars], held, scope, timed=timed)
        self._check_block(stmt.body, held, scope, timed=timed)
        for entry in pushed:
            _remove(held, entry)

    # -- expressions --

    def _scan_all(
        self, nodes: Iterable[ast.AST], held: list[_Held], scope: _Scope, *, timed: bool
    ) -> bool:
        """Check expressions, then apply the acquires and releases they make. True when this
        reported anything (so an ``async with`` already reported as slow is not reported twice)."""
        effects: list[_Effect] = []
        before = len(self.findings)
        for node in nodes:
            self._scan(node, held, scope, timed, effects)
        for effect in effects:
            if isinstance(effect, _Held):
                held.append(effect)
            else:
                for entry in reversed(held):
                    if entry.name == effect.name:
                        _remove(held, entry)
                        break
        return len(self.findings) > before

    def _scan(
        self, node: ast.AST, held: list[_Held], scope: _Scope, timed: bool, effects: list[_Effect]
    ) -> None:
        if isinstance(node, _SCOPE_NODES):
            return  # runs later, when called; storage-helper callables are handled at the call
        if held and isinstance(node, ast.Await):
            self._check_await(node, held, scope)
        if (
            held
            and isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp)
            and any(g.is_async for g in node.generators)
        ):
            self._report_await(node, "async comprehension", held)
        if isinstance(node, ast.Call):
            self._check_call(node, held, scope, timed, effects)
            name = dotted_name(node.func)
            if name and self.rules.timeouts.match(name, self.index.canonical(name)):
                timed = True  # asyncio.wait_for(lock.acquire(), 5)
        for child in ast.iter_child_nodes(node):
            self._scan(child, held, scope, timed, effects)

    def _check_call(
        self, call: ast.Call, held: list[_Held], scope: _Scope, timed: bool, effects: list[_Effect]
    ) -> None:
        name = dotted_name(call.func)
        if name is None:
            return
        if self.rules.helpers.match(name, self.index.canonical(name)):
            self._check_helper_callables(call, held, scope)
            return
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("acquire", "release"):
            lock = self._lock_name(call.func.value)
            if lock is not None:
                if call.func.attr == "release":
                    effects.append(_Release(lock))
                else:
                    self._check_acquire(call, lock, scope, timed)
                    effects.append(_Held(lock, f"lock `{lock}`", call.lineno))
                return
        if held:
            slow = self._slow_reason(call, scope)
            if slow is not None:
                subject, detail = slow
                message = f"{subject} called while holding {_holding(held[-1])}{detail}"
                self._report(call, SLOW_CALL, message, lock_line=held[-1].line)

    def _check_acquire(self, call: ast.Call, lock: str, scope: _Scope, timed: bool) -> None:
        if not (timed or _acquire_has_timeout(call) or scope.in_helper):
            self._report(
                call,
                NO_TIMEOUT,
                f"{lock}.acquire() waits without a timeout: pass timeout=, wrap it in "
                f"`{self._timeout_hint()}`, or go through {self._helper_hint()}",
            )
        entering = scope.function is not None and scope.function.name in ("__enter__", "__aenter__")
        if not (entering or _released_in_finally(self._release_sites(scope), lock, call.lineno)):
            self._report(
                call,
                RELEASE_NOT_IN_FINALLY,
                f"{lock}.acquire() without {lock}.release() in a `finally`: an exception "
                f"leaves the lock held and every later caller waits forever",
            )

    def _check_await(self, node: ast.Await, held: list[_Held], scope: _Scope) -> None:
        value = node.value
        owner = None
        if isinstance(value, ast.Call):
            name = dotted_name(value.func) or "(…)"
            if isinstance(value.func, ast.Attribute):
                owner = dotted_name(value.func.value)
            if self.rules.await_allow.match(name, self.index.canonical(name)):
                return
            if self._slow_reason(value, scope) is not None:
                return  # reported as LK001, the more specific finding
            if scope.in_helper and name in scope.params:
                return  # the helper's callable: checked where it is passed
            shown = f"{name}()"
        else:
            shown = dotted_name(value) or "(…)"
        # Awaiting the lock itself (acquire, Condition.wait) is what a lock is for.
        others = [h for h in held if h.name != owner]
        if others:
            self._report_await(node, f"await {shown}", others)

    def _check_helper_callables(self, call: ast.Call, held: list[_Held], scope: _Scope) -> None:
        """The callable given to ``with_storage(...)`` runs under the storage lock."""
        region = _Held(last_component(dotted_name(call.func) or ""), "storage lock", call.lineno)
        inside = [*held, region]
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            if isinstance(arg, ast.Lambda):
                self._scan_all([arg.body], list(inside), scope, timed=False)
                continue
            target = arg
            if (
                isinstance(arg, ast.Call)
                and arg.args
                and dotted_name(arg.func)
                in (
                    "partial",
                    "functools.partial",
                )
            ):
                target = arg.args[0]
            function = self._resolve(target, scope)
            if function is not None and (id(function), call.lineno) not in self._regions_done:
                self._regions_done.add((id(function), call.lineno))
                self._check_function(function, inside)

    # -- slow work --

    def _slow_reason(self, call: ast.Call, scope: _Scope) -> tuple[str, str] | None:
        """(what is called, how it is slow) when a call is slow work, directly or one call in."""
        name = dotted_name(call.func)
        if name is None:
            return None
        if self.rules.slow.match(name, self.index.canonical(name)):
            return f"{name}()", ""
        function = self._resolve(call.func, scope)
        if function is None:
            return None
        inner = self._slow_inside(function, depth=1, seen=set())
        if inner is None:
            return None
        chain, line = inner
        return f"{name}()", f"; it calls {chain} at line {line}"

    def _slow_inside(
        self, function: FunctionNode, *, depth: int, seen: set[int]
    ) -> tuple[str, int] | None:
        """The first slow call a function makes, following same-module calls a few levels."""
        key = id(function)
        if key in self._slow_memo:
            return self._slow_memo[key]
        if key in seen:
            return None
        seen.add(key)
        scope = self._scope(function, self.index.class_of.get(key))
        calls = sorted(
            (n for n in own_nodes(function.body) if isinstance(n, ast.Call)),
            key=lambda n: (n.lineno, n.col_offset),
        )
        result: tuple[str, int] | None = None
        for call in calls:
            name = dotted_name(call.func)
            if name and self.rules.slow.match(name, self.index.canonical(name)):
                result = (f"{name}()", call.lineno)
                break
        if result is None and depth < MAX_CALL_DEPTH:
            for call in calls:
                callee = self._resolve(call.func, scope)
                if callee is None:
                    continue
                inner = self._slow_inside(callee, depth=depth + 1, seen=seen)
                if inner is not None:
                    result = (f"{dotted_name(call.func)}() → {inner[0]}", inner[1])
                    break
        self._slow_memo[key] = result
        return result

    def _resolve(self, func: ast.expr, scope: _Scope) -> FunctionNode | None:
        """The same-module function a call reaches: a local def, a module function, or a method
        of the enclosing class through ``self``/``cls``."""
        if isinstance(func, ast.Name):
            return scope.local_defs.get(func.id) or self.index.functions.get(func.id)
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in ("self", "cls")
            and scope.class_def is not None
        ):
            return self.index.methods.get(id(scope.class_def), {}).get(func.attr)
        return None

    # -- locks --

    def _lock_name(self, expr: ast.expr) -> str | None:
        """The name of the lock ``expr`` denotes (``with lock_for(key)`` counts), or None."""
        name = dotted_name(expr.func if isinstance(expr, ast.Call) else expr)
        if name is None:
            return None
        if name in self.index.lock_names or (
            "." in name and last_component(name) in self.index.lock_attrs
        ):
            return name
        if self.rules.locks.match(name) and not self.rules.not_locks.match(name):
            return name
        return None

    def _release_target(self, node: ast.AST) -> str | None:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "release"
        ):
            return self._lock_name(node.func.value)
        return None

    # -- reporting --

    def _timeout_hint(self) -> str:
        wrappers = self.rules.config.timeout_wrappers
        return f"async with {wrappers[0]}(...)" if wrappers else "a timeout"

    def _helper_hint(self) -> str:
        helpers = self.rules.config.storage_helpers
        return f"{helpers[0]}()" if helpers else "a helper that has one"

    def _report_await(self, node: ast.AST, what: str, held: list[_Held]) -> None:
        self._report(
            node,
            AWAIT_UNDER_LOCK,
            f"{what} while holding {_holding(held[-1])}: the lock is held across a suspension "
            "point of unknown length",
            lock_line=held[-1].line,
        )

    def _report(
        self, node: ast.AST, code: str, message: str, *, lock_line: int | None = None
    ) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        # The first report of a spot wins: a function checked as a storage callable and again
        # on its own must not count twice.
        self.findings.setdefault(
            (line, col, code), Finding(self.path, line, col, code, message, lock_line)
        )


def _released_in_finally(sites: _ReleaseSites, lock: str, line: int) -> bool:
    """Whether an acquire at ``line`` is covered by a ``try`` whose ``finally`` releases the lock:
    one around it, or the next one after it (with no other release of the lock in between)."""
    for name, start, end in sites.in_finally:
        if name != lock:
            continue
        if start <= line <= end:
            return True
        released_between = any(n == lock and line < at < start for n, at in sites.anywhere)
        if start > line and not released_between:
            return True
    return False


def _holding(entry: _Held) -> str:
    return f"{entry.label} (acquired at line {entry.line})"


def _remove(held: list[_Held], entry: _Held) -> None:
    """Remove exactly ``entry`` (by identity: two holds of one lock are different entries)."""
    for index in range(len(held) - 1, -1, -1):
        if held[index] is entry:
            del held[index]
            return


def _call_arguments(expr: ast.expr) -> list[ast.expr]:
    if isinstance(expr, ast.Call):
        return [*expr.args, *(k.value for k in expr.keywords)]
    return []


def _has_timeout_keyword(expr: ast.expr) -> bool:
    """``FileLock(path, timeout=5)``, ``storage.locked(timeout=...)``."""
    return isinstance(expr, ast.Call) and any(k.arg == "timeout" for k in expr.keywords)


def _acquire_has_timeout(call: ast.Call) -> bool:
    """Whether ``L.acquire(...)`` is bounded: ``timeout=`` (not -1), ``blocking=False``, or
    ``acquire(True, 5)`` / ``acquire(False)`` in threading's positional form."""
    for keyword in call.keywords:
        if keyword.arg == "timeout":
            return not (isinstance(keyword.value, ast.UnaryOp) or _is_constant(keyword.value, None))
        if keyword.arg == "blocking" and _is_constant(keyword.value, False):
            return True
    if len(call.args) >= 2:
        return True
    return bool(call.args) and _is_constant(call.args[0], False)


def _is_constant(node: ast.expr, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value
