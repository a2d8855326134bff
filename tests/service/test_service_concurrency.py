"""Concurrency: concurrent registrations never fail on SQLite locking, and bcrypt never runs on
the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

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


SLOW_CALLBACK_S = 0.2
"""Well under one bcrypt check at 13 rounds (~400-600 ms here), well over anything else the loop
does once warm; a bcrypt call on the loop shows up as a slow callback."""


async def test_bcrypt_never_runs_on_the_event_loop(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(bcrypt_rounds=13))
    emails = [f"slow{n}@example.org" for n in range(2)]
    async with open_client(app) as client:
        # Warm up with the debug mode off: first-use costs (imports, SQL compilation) are not
        # what this test is about.
        await asyncio.gather(*(register(client, email) for email in emails))
        await login(client, emails[0])

        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW_CALLBACK_S
        caplog.clear()
        try:
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                responses = await asyncio.gather(
                    login(client, emails[0]),
                    login(client, emails[1]),
                    login(client, emails[0], "wrong password"),
                    login(client, "unknown@example.org"),
                    register(client, "slow-new@example.org"),
                )
        finally:
            loop.set_debug(False)
    assert [r.status_code for r in responses] == [200, 200, 401, 401, 201]
    slow = [
        record.getMessage()
        for record in caplog.records
        if record.name == "asyncio" and "took" in record.getMessage()
    ]
    assert slow == [], f"slow callbacks on the event loop: {slow}"
