"""The plugin sees every firing of a Locust event before any listener does, whatever they raise.

Locust's ``EventHook.fire`` calls its listeners in registration order and re-raises
``RescheduleTask``, ``StopUser``, ``InterruptTaskSet``, ``RescheduleTaskImmediately`` and
``StopTest`` from one, skipping the rest. A locustfile's request listener that raises
``RescheduleTask`` on a failure (Locust's ``examples/response_validations.py``) is registered
before the plugin's (the locustfile loads first), so a plugin *listener* never saw those
failures: a run Locust counted 39 % failed came out with 0 errors.

Why wrap ``fire`` rather than put the plugin's listener first in the list: a listener's place
is only as good as the next ``add_listener``/list edit (a locustfile or another plugin may put
itself first too, or re-raise before us for any reason), while ``fire`` is the one door every
firing goes through (``events.request.fire(...)``, ``request_event.fire``, ``measure()``). The
wrapper is an attribute of that hook instance only, so the hook keeps its identity and its
listeners for whoever holds it, and Locust's own ``fire`` runs unchanged after it: the
exceptions its control flow relies on still propagate from the locustfile's listeners.

``note_raised`` wraps ``fire`` the other way round: it sees what a firing raised once the
listeners are done (a ``StopTest`` from a ``test_start`` hook, which ends the test before the
plugin's own ``test_start`` listener, registered after the locustfile's, ever runs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("loadkit")

FIRST_LOOK_ATTR = "_loadkit_first_look"
"""Marks a ``fire`` that is our wrapper, with the ``fire`` it wraps (so a second plugin
instance in the process replaces ours instead of recording each firing twice)."""


def look_first(hook: Any, look: Callable[..., Any]) -> None:
    """Call ``look(**kwargs)`` at every ``hook.fire(**kwargs)``, before the hook's listeners.

    ``look`` must be cheap (it runs in the user's request path) and must not raise: if it
    does, the error is logged and the firing goes on to the listeners as if we were not there.
    """
    current = hook.fire
    inner = getattr(current, FIRST_LOOK_ATTR, current)

    def fire(*, reverse: bool = False, **kwargs: Any) -> Any:
        try:
            look(**kwargs)
        except Exception:
            # Our bug must never break the user's request path nor stop the listeners.
            logger.exception("loadkit: recording an event failed; the event goes on")
        return inner(reverse=reverse, **kwargs)

    setattr(fire, FIRST_LOOK_ATTR, inner)
    hook.fire = fire


RAISED_ATTR = "_loadkit_raised"
"""Marks a ``fire`` that is our raise watcher, with the ``fire`` it wraps."""


def note_raised(
    hook: Any,
    types: tuple[type[BaseException], ...],
    noted: Callable[[BaseException], Any],
) -> None:
    """Call ``noted(exception)`` when a listener of ``hook`` raises one of ``types`` (which
    Locust's ``fire`` re-raises, skipping the listeners after it), then let it go on.

    The plugin's own listener keeps its place (a ``StopTest`` from a ``test_start`` hook
    registered before it is seen all the same).
    """
    current = hook.fire
    inner = getattr(current, RAISED_ATTR, current)

    def fire(*, reverse: bool = False, **kwargs: Any) -> Any:
        try:
            return inner(reverse=reverse, **kwargs)
        except types as exc:
            try:
                noted(exc)
            except Exception:
                logger.exception("loadkit: noting an event's exception failed; it goes on")
            raise

    setattr(fire, RAISED_ATTR, inner)
    hook.fire = fire
