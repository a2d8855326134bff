"""A load scenario written as data: setup steps once per user, then a weighted mix of requests.

loadkit runs the ``[scenarios.NAME]`` of acceptance.toml with this file (``loadkit load
--scenario NAME``), handing it the scenario as JSON in ``--declarative-spec``. Plain Locust runs
it too, given that JSON in a file::

    locust -f scenarios/declarative.py --host http://127.0.0.1:8080 --declarative-file spec.json

The description (``format = "loadkit.declarative/1"``): ``setup`` and ``requests``, each request
with ``name`` (the endpoint it is counted under), ``method``, ``path``, ``query``, ``headers``,
optional ``json`` or ``form``, ``statuses`` (those that pass), ``save`` (``{"token":
"data.jwt"}``: a JMESPath on the JSON body), and in ``requests`` a ``weight``.

Each user runs the setup in order once (Locust's ``on_start``); a step that fails stops it, and
the user's next iteration runs the setup again instead of the mix (every attempt is a request,
counted and classified). Each iteration then sends one request of the mix, chosen at random in
proportion to its weight; a request that uses a value no request has saved yet for this user
waits until one has. A response whose status is not one of ``statuses`` is failed
(``catch_response``), so loadkit's plugin reads its real error kind from it.

Templates: ``{name}`` is a saved value or one the user makes (``{email}``, ``{password}``: its
own account; ``{new_email}``, ``{uuid}``: fresh at each use); ``${ENV_VAR}`` is read from this
process's environment (secrets: never written into a request's name or a failure's words). A
``json`` string that is one ``{name}`` alone keeps the value's type.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jmespath

# a sibling module: Locust puts the locustfile's folder on sys.path while it imports it
from http2_user import FastOrHttp2User
from locust import constant, events, task

FORMAT = "loadkit.declarative/1"
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
FRESH = ("new_email", "uuid")


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--declarative-file",
        default=None,
        help="The declarative scenario to run: a JSON file (loadkit.declarative/1).",
        env_var="LOCUST_DECLARATIVE_FILE",
    )
    parser.add_argument(
        "--declarative-spec",
        default=None,
        help="The declarative scenario as JSON text (loadkit passes it; wins over the file).",
        include_in_web_ui=False,
    )


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
    save: dict[str, jmespath.parser.ParsedResult]
    weight: int
    needs: frozenset[str]
    """The ``{name}`` values it uses (none of the fresh ones)."""


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
    texts = [item["path"], *item.get("headers", {}).values()]
    texts += [value for value in item.get("query", {}).values() if isinstance(value, str)]
    texts += [v for v in (item.get("form") or {}).values() if isinstance(v, str)]
    texts += list(_strings(item.get("json")))
    needs: set[str] = set()
    for text in texts:
        for match in _TEMPLATE.finditer(text):
            if match.group(1) is not None and match.group(1) not in environ:
                raise ValueError(
                    f"request {item['name']!r} uses ${{{match.group(1)}}}, but the environment "
                    f"variable {match.group(1)} is not set; export it"
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
        needs=frozenset(needs - set(FRESH)),
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


def _scalar(value: Any, values: Values) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return values.fill(value) if isinstance(value, str) else str(value)


_PARSED: dict[str, Scenario] = {}
"""Each description parsed once per process (every user of a run shares it)."""


def scenario_of(options: Any) -> Scenario:
    """The scenario Locust's options give (``--declarative-spec``, else the file's)."""
    text = getattr(options, "declarative_spec", None)
    if not text:
        path = getattr(options, "declarative_file", None)
        if not path:
            raise ValueError(
                "no declarative scenario: give --declarative-file spec.json (loadkit load "
                "--scenario NAME passes [scenarios.NAME] of acceptance.toml itself)"
            )
        with open(path, encoding="utf-8") as file:
            text = file.read()
    scenario = _PARSED.get(text)
    if scenario is None:
        scenario = _PARSED[text] = parse_scenario(text, os.environ)
    return scenario


class DeclarativeUser(FastOrHttp2User):
    """Runs a declarative scenario: its setup once, then one weighted request per iteration."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Read the scenario and run its setup."""
        self.scenario = scenario_of(self.environment.parsed_options)
        self.values = Values(os.environ)
        self.ready = False
        self._mix_for: frozenset[str] | None = None
        self._mix: tuple[list[Request], list[int]] = ([], [])
        self._setup()

    def _setup(self) -> None:
        for step in self.scenario.setup:
            if not self._send(step):
                return
        self.ready = True

    @task
    def iteration(self) -> None:
        """One request of the mix, chosen by weight (or the setup again, while it fails)."""
        if not self.ready:
            self._setup()
            return
        requests, weights = self._runnable()
        if requests:
            self._send(random.choices(requests, cum_weights=weights)[0])

    def _runnable(self) -> tuple[list[Request], list[int]]:
        """The requests whose values are all there, and their cumulative weights."""
        have = frozenset(self.values.saved)
        if have != self._mix_for:
            runnable = [r for r in self.scenario.requests if r.needs <= have]
            total, cumulative = 0, []
            for request in runnable:
                total += request.weight
                cumulative.append(total)
            self._mix_for, self._mix = have, (runnable, cumulative)
        return self._mix

    def _send(self, request: Request) -> bool:
        """Send ``request`` filled in; whether its status passed and its values were saved."""
        values = self.values
        path = values.fill(request.path)
        if request.query:
            query = urlencode({key: _scalar(v, values) for key, v in request.query.items()})
            path += ("&" if "?" in path else "?") + query
        headers = {key: values.fill(text) for key, text in request.headers.items()}
        kwargs: dict[str, Any] = {}
        if request.has_json:
            kwargs["json"] = values.fill_json(request.body_json)
        elif request.form is not None:
            form = {key: _scalar(value, values) for key, value in request.form.items()}
            kwargs["data"] = urlencode(form).encode()
            if not any(key.lower() == "content-type" for key in headers):
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        with self.client.request(
            request.method,
            path,
            name=request.name,
            headers=headers,
            catch_response=True,
            allow_redirects=False,
            **kwargs,
        ) as response:
            status = response.status_code
            if status not in request.statuses:
                expected = " or ".join(str(s) for s in sorted(request.statuses))
                response.failure(f"expected status {expected}, got {status}")
                return False
            missing = self._save(request, response)
            if missing is not None:
                response.failure(missing)
                return False
            response.success()
            return True

    def _save(self, request: Request, response: Any) -> str | None:
        """Save the request's values from the JSON body; what is missing, if anything."""
        if not request.save:
            return None
        try:
            document = json.loads(response.content or b"null")
        except ValueError:
            return f"cannot save {', '.join(request.save)}: the body is not JSON"
        for name, path in request.save.items():
            found = path.search(document)
            if found is None:
                return f"cannot save {name}: `{path.expression}` is not in the body"
            self.values.saved[name] = found
        return None
