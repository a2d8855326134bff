"""/api/items: the caller's own items (create, list, get, delete).

Reads go to the storage cache first and fill it from the database on a miss; writes go to the
database first and then to the cache, queued (``Storage.write_behind``): a write that took effect
is never answered with an error because the storage lock was busy. Another user's item is a 404,
exactly as a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from service.dependencies import CurrentClaims, ServicesDep
from service.errors import NotFound, Unauthorized
from service.idempotency import (
    IDEMPOTENCY_HEADER,
    MAX_KEY_CHARS,
    answer_response,
    find_answer,
    remember_answer,
    replay,
    request_fingerprint,
)
from service.models import MAX_ROW_ID, Item
from service.openapi import error_responses
from service.schemas import ItemIn, ItemOut, ItemPage
from service.storage import ItemRecord

router = APIRouter(prefix="/api/items", tags=["items"])

ITEM_NOT_FOUND = "item not found"
USER_GONE = "the token's user no longer exists"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemOut,
    responses=error_responses(401, 422, 503),
)
async def create_item(
    body: ItemIn,
    claims: CurrentClaims,
    services: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            min_length=1,
            max_length=MAX_KEY_CHARS,
            description="Makes a retry safe: the same key and body within the window get the "
            "first answer again (with Idempotent-Replayed: true), never a second item.",
        ),
    ] = None,
) -> ItemOut | Response:
    """Create an item owned by the caller (see service.idempotency for ``Idempotency-Key``).

    The answer is a success exactly when the item was committed: the cache update after the
    commit is queued, never waited for.
    """
    if idempotency_key is not None:
        return await _create_item_once(body, claims.user_id, idempotency_key, services)
    item = Item(owner_id=claims.user_id, name=body.name, description=body.description)
    try:
        async with services.database.write_session() as session:
            session.add(item)
            await session.flush()
            record = item.record()
    except IntegrityError:
        # The foreign key failed: a validly signed token for a user the database lacks.
        raise Unauthorized(USER_GONE) from None
    services.storage.write_behind(lambda c: c.items.put(record.id, record))
    return _item_out(record)


async def _create_item_once(
    body: ItemIn, owner_id: int, key: str, services: ServicesDep
) -> Response:
    """Create the item and store its answer under ``key`` in one transaction, or replay the
    answer already stored."""
    window = services.idempotency_window
    request_hash = request_fingerprint(body)
    async with services.database.read_session() as session:
        stored = await find_answer(session, owner_id=owner_id, key=key, window=window)
    if stored is not None:
        return replay(stored, request_hash)
    item = Item(owner_id=owner_id, name=body.name, description=body.description)
    try:
        async with services.database.write_session() as session:
            session.add(item)
            await session.flush()
            record = item.record()
            answer = _item_out(record).model_dump_json()
            await remember_answer(
                session,
                owner_id=owner_id,
                key=key,
                request_hash=request_hash,
                status_code=status.HTTP_201_CREATED,
                body=answer,
                window=window,
            )
    except IntegrityError:
        # Either a concurrent request with this key committed first (its answer is there now),
        # or the token's user no longer exists (the foreign key failed).
        async with services.database.read_session() as session:
            stored = await find_answer(session, owner_id=owner_id, key=key, window=window)
        if stored is None:
            raise Unauthorized(USER_GONE) from None
        return replay(stored, request_hash)
    services.storage.write_behind(lambda c: c.items.put(record.id, record))
    return answer_response(status.HTTP_201_CREATED, answer)


@router.get("", response_model=ItemPage, responses=error_responses(401, 422, 503))
async def list_items(
    claims: CurrentClaims,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, description="Page size; capped by the server.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> ItemPage:
    """The caller's items, oldest first, at most ENGINES_ITEMS_PAGE_MAX per page."""
    limit = min(limit, services.settings.items_page_max)
    async with services.database.read_session() as session:
        rows = await session.scalars(
            select(Item)
            .where(Item.owner_id == claims.user_id)
            .order_by(Item.id)
            .offset(offset)
            .limit(limit + 1)  # one more tells whether a next page exists
        )
        records = [row.record() for row in rows]
    has_more = len(records) > limit
    return ItemPage(
        items=[_item_out(r) for r in records[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if has_more else None,
    )


@router.get("/{item_id}", response_model=ItemOut, responses=error_responses(401, 404, 422, 503))
async def get_item(item_id: int, claims: CurrentClaims, services: ServicesDep) -> ItemOut:
    """One of the caller's items."""
    return _item_out(await _owned_item(services, claims.user_id, item_id, "get_item"))


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422, 503),
)
async def delete_item(item_id: int, claims: CurrentClaims, services: ServicesDep) -> Response:
    """Delete one of the caller's items."""
    if not _may_exist(item_id):
        raise NotFound(ITEM_NOT_FOUND)
    storage = services.storage
    # The waiting use of the lock comes before the write (a timeout then means nothing was
    # deleted); the forget after it is queued whatever the outcome (a failed commit may still
    # have taken effect) and drops a copy a reader cached while the delete ran.
    await storage.with_storage_traced("delete_item", lambda c: c.forget_item(item_id))
    try:
        async with services.database.write_session() as session:
            result = await session.execute(
                delete(Item).where(Item.id == item_id, Item.owner_id == claims.user_id)
            )
            deleted = getattr(result, "rowcount", 0)
    finally:
        storage.write_behind(lambda c: c.forget_item(item_id))
    if not deleted:
        raise NotFound(ITEM_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _owned_item(
    services: ServicesDep, user_id: int, item_id: int, endpoint: str
) -> ItemRecord:
    if not _may_exist(item_id):
        raise NotFound(ITEM_NOT_FOUND)  # as any id that names no item, not a driver error
    storage = services.storage
    record, generation = await storage.with_storage_traced(
        endpoint, lambda c: c.item_lookup(item_id)
    )
    if record is None:
        async with services.database.read_session() as session:
            item = await session.get(Item, item_id)
            record = item.record() if item is not None else None
        if record is not None:
            found = record
            await storage.with_storage_traced(endpoint, lambda c: c.fill_item(found, generation))
    if record is None or record.owner_id != user_id:
        raise NotFound(ITEM_NOT_FOUND)
    return record


def _may_exist(item_id: int) -> bool:
    return 1 <= item_id <= MAX_ROW_ID


def _item_out(record: ItemRecord) -> ItemOut:
    return ItemOut(
        id=record.id,
        owner_id=record.owner_id,
        name=record.name,
        description=record.description,
        created_at=record.created_at,
    )
