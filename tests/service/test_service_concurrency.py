"""Concurrency: concurrent registrations never fail on SQLite locking, and bcrypt never runs on
the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import bcrypt
import httpx
import pytest
from sqlalchemy import func, select

from service.app import create_app
from service.models import User
from tests.service.engines_api import SettingsFactory, login, open_client, register


async def test_50_concurrent_registrations_give_only_201_or_409(client: httpx.AsyncClient) -> None:
    unique = [f"user{n}@example.org" for n in range(25)]
    contested = [f"same{n % 5}@example.org" for n in range(25)]  # 5 emails, 5 tries each
    emails = unique + contested
    responses = await asyncio.gather(*(register(client, email) for email in emails))

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code >= 500]
    assert statuses[201] == 30 and statuses[409] == 20
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["kind"] == "conflict"

    # The app behind the client's ASGITransport; httpx types _transport as any transport.
    app = client._transport.app  # type: ignore[attr-defined]
    async with app.state.services.database.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 30
    logins = await asyncio.gather(*(login(client, email) for email in set(emails)))
    assert {r.status_code for r in logins} == {200}


async def test_bcrypt_never_runs_on_the_event_loop(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each bcrypt call (the real one) notes the thread it ran on: an observation, not a timing,
    # so a busy machine cannot fail the test or hide a call made on the loop.
    ran_on: list[int] = []

    def noting(real: Callable[..., bytes]) -> Callable[..., bytes]:
        def call(*args: Any) -> bytes:
            ran_on.append(threading.get_ident())
            return real(*args)

        return call

    for name in ("checkpw", "hashpw"):
        monkeypatch.setattr(bcrypt, name, noting(getattr(bcrypt, name)))
    app = create_app(make_settings(bcrypt_rounds=4))
    emails = [f"slow{n}@example.org" for n in range(2)]
    async with open_client(app) as client:
        await asyncio.gather(*(register(client, email) for email in emails))
        loop_thread = threading.get_ident()
        responses = await asyncio.gather(
            login(client, emails[0]),
            login(client, emails[1]),
            login(client, emails[0], "wrong password"),
            login(client, "unknown@example.org"),
            register(client, "slow-new@example.org"),
        )
    assert [r.status_code for r in responses] == [200, 200, 401, 401, 201]
    assert len(ran_on) >= 7  # 3 registrations and 4 logins, the unknown one against a dummy hash
    assert loop_thread not in ran_on, "bcrypt ran on the event loop's thread"
