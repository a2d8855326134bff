"""A load scenario written as data: setup steps once per user, then a weighted mix of requests.

loadkit runs the ``[scenarios.NAME]`` of acceptance.toml with this file (``loadkit load
--scenario NAME``), handing it the scenario as JSON in a file. Plain Locust runs it the same
way::

    locust -f scenarios/declarative.py --host http://127.0.0.1:8080 --declarative-file spec.json

A master (or a lone process) reads the file into ``--declarative-spec`` at its start: that
option reaches its workers with each spawn message, so workers elsewhere need no file.
Locust prepends ``--host`` to each request's path as written: loadkit gives it the target
without a trailing slash (``http://h/api/`` → ``http://h/api``, then ``/api/items``), as its
native engine requests it, and refuses a target with a query.

The description (``format = "loadkit.declarative/1"``) and its templates are read by
``declarative_spec.py``, which says what they hold.

Each user runs the setup in order once (Locust's ``on_start``); a step that fails stops it, and
the user's next iteration sends that step again instead of the mix, then the steps after it: the
steps that passed stay done, their saved values kept (a register that passed is not sent again
to get a conflict). Every attempt is a request, counted and classified. Each iteration then
sends one request of the mix, chosen at random in proportion to its weight; a request that uses
a value no request has saved yet for this user waits until one has. A response whose status
is not one of ``statuses`` is failed (``catch_response``), so loadkit's plugin reads its real
error kind from it.

``${ENV_VAR}`` secrets are read from this process's environment, and never written into a
request's name or a failure's words.
"""

from __future__ import annotations

import os
import random
from typing import Any

# sibling modules: Locust puts the locustfile's folder on sys.path while it imports it
from declarative_spec import (
    Request,
    Scenario,
    Setup,
    Values,
    judge,
    parse_scenario,
    prepare,
    weighted,
)
from http2_user import FastOrHttp2User
from locust import constant, events, task


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
        help="The declarative scenario as JSON text (a master sends it to its workers; wins "
        "over the file).",
        include_in_web_ui=False,
    )


@events.init.add_listener
def _read_file_for_workers(environment: Any, **_kwargs: Any) -> None:
    # A worker's own file may not exist (the master's path, on another machine): the master's
    # text comes with the spawn message instead.
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False) or options.declarative_spec:
        return
    if options.declarative_file:
        with open(options.declarative_file, encoding="utf-8") as file:
            options.declarative_spec = file.read()


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
        """Read the scenario and run its setup. No scenario to run (no option, a variable not
        set here) raises: Locust logs it and stops this user, and loadkit counts it among the
        run's exceptions."""
        self.scenario = scenario_of(self.environment.parsed_options)
        self.values = Values(os.environ)
        self.setup = Setup(self.scenario.setup)
        self._mix_for: frozenset[str] | None = None
        self._mix: tuple[list[Request], list[int]] = ([], [])
        self.setup.run(self._send)

    @task
    def iteration(self) -> None:
        """One request of the mix, chosen by weight (or, while the setup is not finished, its
        steps again from the one that failed)."""
        if not self.setup.finished:
            self.setup.run(self._send)
            return
        have = frozenset(self.values.saved)
        if have != self._mix_for:  # a new value saved: more requests may run
            self._mix_for, self._mix = have, weighted(self.scenario.requests, have)
        requests, cumulative = self._mix
        if requests:
            self._send(random.choices(requests, cum_weights=cumulative)[0])

    def _send(self, request: Request) -> bool:
        """Send ``request`` filled in; whether its status passed and its values were saved."""
        outgoing = prepare(request, self.values)
        with self.client.request(
            outgoing.method,
            outgoing.path,
            name=request.name,
            headers=outgoing.headers,
            catch_response=True,
            allow_redirects=False,
            **outgoing.body,
        ) as response:
            failure = judge(request, response.status_code, response.content, self.values)
            if failure is not None:
                # Failed, so that loadkit's plugin reads the response's real error kind.
                response.failure(failure)
                return False
            response.success()
            return True
