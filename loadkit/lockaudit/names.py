"""Names in lock-audit code: dotted call names, glob patterns over them, and what a module declares.

Shared by the rules (``loadkit.lockaudit.rules``): how ``self._lock.acquire`` becomes a name that
``*lock*`` can match, which import aliases resolve ``bc.checkpw`` to ``bcrypt.checkpw``, and which
names a module assigns from lock constructors.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from fnmatch import translate

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- names and patterns --------------------------------------------------------------------------


def dotted_name(node: ast.expr) -> str | None:
    """``a.b.c`` for attribute chains; calls add ``()``, subscripts ``[]``; else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted_name(node.value) or '(…)'}.{node.attr}"
    if isinstance(node, ast.Call):
        base = dotted_name(node.func)
        return f"{base}()" if base else None
    if isinstance(node, ast.Subscript):
        base = dotted_name(node.value)
        return f"{base}[]" if base else None
    if isinstance(node, ast.Await):
        return dotted_name(node.value)
    return None


def last_component(name: str) -> str:
    """The final identifier of a dotted name: ``self._locks[]`` → ``_locks``."""
    tail = name.rsplit(".", 1)[-1]
    match = _IDENTIFIER.match(tail)
    return match.group() if match else tail


class Patterns:
    """Shell-glob patterns over names: dotless ones match a name's last component (so
    ``hash_password`` matches ``security.hash_password``), dotted ones the whole name (so
    ``requests.*`` matches the module, not ``self.requests.append``)."""

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = False) -> None:
        flags = re.IGNORECASE if ignore_case else 0
        patterns = tuple(patterns)
        self._simple = self._compile([p for p in patterns if "." not in p], flags)
        self._dotted = self._compile([p for p in patterns if "." in p], flags)

    @staticmethod
    def _compile(patterns: list[str], flags: int) -> re.Pattern[str] | None:
        if not patterns:
            return None
        return re.compile("|".join(f"(?:{translate(p)})" for p in patterns), flags)

    def match(self, *names: str) -> bool:
        """Whether any of ``names`` (spellings of one name) matches a pattern."""
        for name in names:
            if self._simple is not None and self._simple.match(last_component(name)):
                return True
            if self._dotted is not None and self._dotted.match(name):
                return True
        return False


# --- what the module declares --------------------------------------------------------------------


class ModuleIndex:
    """What one module declares that the rules need: import aliases, names assigned from lock
    constructors, and its functions and methods (for call resolution)."""

    def __init__(self, tree: ast.Module, constructors: Patterns) -> None:
        self.aliases: dict[str, str] = {}
        self.lock_names: set[str] = set()
        self.lock_attrs: set[str] = set()
        self.functions: dict[str, FunctionNode] = {}
        self.methods: dict[int, dict[str, FunctionNode]] = {}
        self.class_of: dict[int, ast.ClassDef | None] = {}
        self._constructors = constructors
        self.function_nodes: list[FunctionNode] = []
        """Every function and method, nested ones included, in source order."""
        self.local_defs: dict[int, dict[str, FunctionNode]] = {}
        """Functions defined inside each function (by the id of the outer one), by name."""
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions[statement.name] = statement
        # One pass over the tree (it is the audit's hot loop); lock assignments are resolved after
        # it, once every import alias is known.
        candidates: list[ast.AST] = []
        # (node, enclosing class, enclosing function when it is the nearest scope)
        stack: list[tuple[ast.AST, ast.ClassDef | None, FunctionNode | None]] = [(tree, None, None)]
        while stack:
            node, cls, outer = stack.pop()
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.ClassDef):
                self.methods[id(node)] = {
                    f.name: f
                    for f in node.body
                    if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                }
                cls, outer = node, None
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.class_of[id(node)] = cls
                self.function_nodes.append(node)
                if outer is not None:
                    self.local_defs.setdefault(id(outer), {})[node.name] = node
                outer = node
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.arg):
                candidates.append(node)
            stack.extend((child, cls, outer) for child in ast.iter_child_nodes(node))
        self.function_nodes.sort(key=lambda f: (f.lineno, f.col_offset))
        for node in candidates:
            self._index_locks(node)

    def canonical(self, name: str) -> str:
        """``name`` with its first component resolved through imports: ``bc.x`` → ``bcrypt.x``."""
        match = _IDENTIFIER.match(name)
        if match and match.group() in self.aliases:
            return self.aliases[match.group()] + name[match.end() :]
        return name

    def _is_constructor(self, node: ast.expr | None) -> bool:
        """A lock constructor call, or an annotation naming a lock type: ``asyncio.Lock | None``."""
        if node is None:
            return False
        if isinstance(node, ast.BinOp):
            return self._is_constructor(node.left) or self._is_constructor(node.right)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self._constructors.match(node.value, self.canonical(node.value))
        if isinstance(node, ast.Call):
            # dataclasses.field(default_factory=asyncio.Lock) as well as asyncio.Lock()
            factories = [k.value for k in node.keywords if k.arg == "default_factory"]
            return self._is_constructor(node.func) or any(map(self._is_constructor, factories))
        name = dotted_name(node)
        return name is not None and self._constructors.match(self.canonical(name))

    def _index_locks(self, node: ast.AST) -> None:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign) and self._is_constructor(node.value):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and (
            self._is_constructor(node.annotation) or self._is_constructor(node.value)
        ):
            targets = [node.target]
        elif isinstance(node, ast.arg) and self._is_constructor(node.annotation):
            self.lock_names.add(node.arg)
        for target in targets:
            name = dotted_name(target)
            if name is not None:
                # A class-body assignment names an instance attribute too, hence lock_attrs.
                self.lock_names.add(name)
                self.lock_attrs.add(last_component(name))
