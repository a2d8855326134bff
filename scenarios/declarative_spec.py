"""A declarative scenario's description, read; and each request filled in for one user.

Stdlib and jmespath only (no Locust): ``declarative.py`` sends what this prepares. The
description (``format = "loadkit.declarative/1"``, JSON) has ``name``, ``setup`` and
``requests``; each request ``name`` (the endpoint it is counted under), ``method``, ``path``,
``query``, ``headers``, optional ``json`` or ``form``, ``statuses`` (those that pass), ``save``
(``{"token": "data.jwt"}``: a JMESPath on the JSON body), and in ``requests`` a ``weight``.

Templates: ``{name}`` is a saved value or one the user makes (``{email}``, ``{password}``: its
own account; ``{new_email}``, ``{uuid}``: fresh at each use); ``${ENV_VAR}`` is read from the
environment. A ``json`` string that is one ``{name}`` alone keeps the value's type.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jmespath

FORMAT = "loadkit.declarative/1"
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
FRESH = frozenset({"new_email", "uuid"})
FORM_TYPE = "application/x-www-form-urlencoded"
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters (tab aside): no header can carry them."""


@dataclass(frozen=True)
class Request:
    """One request of the scenario, as written (templates not yet filled)."""

    name: str
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body_json: Any
    has_json: bool
    form: dict[str, Any] | None
    statuses: frozenset[int]
    save: dict[str, Any]
    """Each name saved, and its compiled JMESPath."""
    weight: int
    needs: frozenset[str]
    """The ``{name}`` values it uses that must have been saved (or made) first."""


@dataclass(frozen=True)
class Scenario:
    """A parsed description: its name, setup steps and weighted mix."""

    name: str
    setup: tuple[Request, ...]
    requests: tuple[Request, ...]


def parse_scenario(text: str, environ: Mapping[str, str]) -> Scenario:
    """The scenario in ``text`` (JSON); a ValueError naming what is wrong, or the variable that
    ``environ`` lacks."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a declarative scenario: its format must be {FORMAT!r}")
    setup = tuple(_parse_request(item, environ, weighted=False) for item in document["setup"])
    mix = tuple(_parse_request(item, environ, weighted=True) for item in document["requests"])
    if not mix:
        raise ValueError("a declarative scenario needs at least one request in its mix")
    return Scenario(name=str(document.get("name", "declarative")), setup=setup, requests=mix)


def _parse_request(item: dict[str, Any], environ: Mapping[str, str], *, weighted: bool) -> Request:
    _check_sendable(item, environ)
    texts = [item["path"], *item.get("headers", {}).values()]
    texts += [value for value in item.get("query", {}).values() if isinstance(value, str)]
    texts += [v for v in (item.get("form") or {}).values() if isinstance(v, str)]
    texts += list(_strings(item.get("json")))
    needs: set[str] = set()
    for text in texts:
        for match in _TEMPLATE.finditer(text):
            variable = match.group(1)
            if variable is not None and variable not in environ:
                raise ValueError(
                    f"request {item['name']!r} uses ${{{variable}}}, but the environment "
                    f"variable {variable} is not set; export it"
                )
            if match.group(2) is not None:
                needs.add(match.group(2))
    weight = int(item.get("weight", 1)) if weighted else 0
    if weighted and weight < 1:
        raise ValueError(f"request {item['name']!r}: weight must be 1 or more, not {weight}")
    return Request(
        name=str(item["name"]),
        method=str(item.get("method", "GET")).upper(),
        path=str(item["path"]),
        query=dict(item.get("query", {})),
        headers=dict(item.get("headers", {})),
        body_json=item.get("json"),
        has_json="json" in item,
        form=item.get("form"),
        statuses=frozenset(int(status) for status in item["statuses"]),
        save={key: jmespath.compile(path) for key, path in item.get("save", {}).items()},
        weight=weight,
        needs=frozenset(needs - FRESH),
    )


def _check_sendable(item: dict[str, Any], environ: Mapping[str, str]) -> None:
    """A ValueError naming the variable (never its value) when a ``${ENV_VAR}`` in the path or
    a header holds a control character: every request would raise, the secret in its text.
    (The query, a form and JSON are encoded: any value goes there.)"""
    for text in [item["path"], *item.get("headers", {}).values()]:
        for match in _TEMPLATE.finditer(text):
            variable = match.group(1)
            if variable is not None and _UNSENDABLE.search(environ.get(variable, "")):
                raise ValueError(
                    f"request {item['name']!r} uses ${{{variable}}} in its path or a header, "
                    f"but the environment variable {variable} holds a line break or another "
                    "control character (a trailing newline from a file?); strip it"
                )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class Setup:
    """A user's progress through the setup: a step that passed stays done (its values kept),
    so a setup that failed part-way goes on from the step that failed."""

    def __init__(self, steps: tuple[Request, ...]) -> None:
        self.steps = steps
        self.done = 0
        """How many steps have passed, in order."""

    @property
    def finished(self) -> bool:
        """Whether every step has passed."""
        return self.done == len(self.steps)

    def run(self, send: Callable[[Request], bool]) -> bool:
        """Send the steps not yet passed, in order, until one fails (``send``: whether it
        passed); whether the setup is finished."""
        while not self.finished:
            if not send(self.steps[self.done]):
                return False
            self.done += 1
        return True


class Values:
    """A user's values: those it made, those its steps saved, and the environment's."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.saved: dict[str, Any] = {
            "email": f"load-{uuid.uuid4().hex}@loadkit.test",
            "password": f"load-{secrets.token_hex(12)}",
        }

    def value(self, name: str) -> Any:
        """A ``{name}``'s value (fresh ones made now)."""
        if name == "uuid":
            return str(uuid.uuid4())
        if name == "new_email":
            return f"load-{uuid.uuid4().hex}@loadkit.test"
        return self.saved[name]

    def fill(self, text: str) -> str:
        """``text`` with its templates filled (a table or an array as JSON)."""
        if "{" not in text:
            return text

        def one(match: re.Match[str]) -> str:
            if match.group(1) is not None:
                return str(self.environ[match.group(1)])
            found = self.value(match.group(2))
            return found if isinstance(found, str) else json.dumps(found)

        return _TEMPLATE.sub(one, text)

    def fill_json(self, value: Any) -> Any:
        """A JSON body filled in; a string that is one ``{name}`` alone becomes the value."""
        if isinstance(value, str):
            whole = _TEMPLATE.fullmatch(value)
            if whole is not None and whole.group(2) is not None:
                return self.value(whole.group(2))
            return self.fill(value)
        if isinstance(value, dict):
            return {key: self.fill_json(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill_json(item) for item in value]
        return value

    def scalar(self, value: Any) -> str:
        """A query or form value as sent (booleans as ``true``/``false``, as in JSON)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return self.fill(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Outgoing:
    """A request filled in for one user: what the HTTP client is given."""

    method: str
    path: str
    """With its query."""
    headers: dict[str, str]
    body: dict[str, Any]
    """The client's body argument: ``{"json": ...}``, ``{"data": b"..."}`` or nothing."""


def prepare(request: Request, values: Values) -> Outgoing:
    """``request`` with ``values`` filled in: the query encoded onto the path, a form encoded
    (with its Content-Type unless a header gives one)."""
    path = values.fill(request.path)
    if request.query:
        query = urlencode({key: values.scalar(value) for key, value in request.query.items()})
        path += ("&" if "?" in path else "?") + query
    headers = {key: values.fill(text) for key, text in request.headers.items()}
    body: dict[str, Any] = {}
    if request.has_json:
        body["json"] = values.fill_json(request.body_json)
    elif request.form is not None:
        form = {key: values.scalar(value) for key, value in request.form.items()}
        body["data"] = urlencode(form).encode()
        if not any(key.lower() == "content-type" for key in headers):
            headers["Content-Type"] = FORM_TYPE
    return Outgoing(method=request.method, path=path, headers=headers, body=body)


def judge(request: Request, status: int, content: bytes | None, values: Values) -> str | None:
    """Why the response fails (its status not one of ``statuses``, a value to save not in its
    JSON body), else None, having saved the request's values into ``values``. The words never
    hold a value sent or received."""
    if status not in request.statuses:
        expected = " or ".join(str(s) for s in sorted(request.statuses))
        return f"expected status {expected}, got {status}"
    if not request.save:
        return None
    try:
        document = json.loads(content or b"null")
    except ValueError:
        return f"cannot save {', '.join(request.save)}: the body is not JSON"
    found: dict[str, Any] = {}
    for name, path in request.save.items():
        value = path.search(document)
        if value is None:
            return f"cannot save {name}: `{path.expression}` is not in the body"
        found[name] = value
    values.saved.update(found)
    return None


def weighted(
    requests: tuple[Request, ...], have: frozenset[str]
) -> tuple[list[Request], list[int]]:
    """The requests whose values are all in ``have``, and their cumulative weights (for
    ``random.choices(..., cum_weights=...)``)."""
    runnable = [request for request in requests if request.needs <= have]
    total, cumulative = 0, []
    for request in runnable:
        total += request.weight
        cumulative.append(total)
    return runnable, cumulative
