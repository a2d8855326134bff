"""Raw request paths into endpoint names: the query dropped, ids folded into ``{id}``.

A proxy logs the path a client sent (``/api/items/8123?full=1``), not the route that served it
(``/api/items/{item_id}``). Grouping errors by raw path would give one row per item; folding the
segments that are ids (numbers, UUIDs, long hex strings) gives one row per route, close to the
service's own route templates.
"""

from __future__ import annotations

import re

ID = "{id}"
_ID_SEGMENT = re.compile(
    r"/(?:[0-9]+"
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|[0-9A-Fa-f]{16,})(?=/|$)"
)
"""A whole path segment that is an id: digits, a UUID, or 16+ hex digits (object ids, hashes)."""


def endpoint_path(target: str) -> str:
    """The path of a request target, query and fragment dropped, ids folded into ``{id}``.

    An absolute-form target (``http://host/x``, sent to forward proxies) keeps its path only.
    """
    path = target.partition("?")[0].partition("#")[0]
    if not path.startswith("/") and "://" in path:
        slash = path.find("/", path.find("://") + 3)
        path = path[slash:] if slash >= 0 else "/"
    return _ID_SEGMENT.sub("/" + ID, path)
