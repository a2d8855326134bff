"""/api/auth: register, login, me.

Each handler goes acquire → read → drop → work → reacquire → write: the storage lock is held only
for the dict reads and writes inside ``with_storage_traced``; bcrypt (worker thread), JWT and the
database all run with the lock released. After a database write the cache update is queued
(``Storage.write_behind``), never waited for: a registration that was saved is answered 201.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.dependencies import CurrentClaims, ServicesDep
from service.errors import Conflict, InvalidCredentials, Unauthorized
from service.models import User
from service.openapi import error_responses
from service.schemas import Credentials, TokenOut, UserOut
from service.storage import UserRecord

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=error_responses(409, 422, 503),
)
async def register(body: Credentials, services: ServicesDep) -> UserOut:
    """Create an account: 201, or 409 conflict when the email is taken."""
    storage = services.storage
    known = await storage.with_storage_traced("register", lambda c: body.email in c.users)
    if known:
        raise Conflict("email already registered")
    password_hash = await services.passwords.hash(body.password)
    user = User(email=body.email, password_hash=password_hash)
    try:
        async with services.database.write_session() as session:
            session.add(user)
            await session.flush()
            record = user.record()
    except IntegrityError:
        raise Conflict("email already registered") from None
    storage.write_behind(lambda c: c.put_user(record))  # never fails a committed write
    return _user_out(record)


@router.post("/login", response_model=TokenOut, responses=error_responses(401, 422, 429, 503))
async def login(body: Credentials, request: Request, services: ServicesDep) -> TokenOut:
    """Exchange credentials for a bearer token.

    Every login does the same work whether the account exists or not, and whether it was cached
    or not: one database read (the committed row is the truth: no cache entry can refuse the
    right password), one use of the storage lock to refresh the cache with what was read, and
    one bcrypt check (against a dummy hash for an unknown email). The same 401 body follows a
    wrong password and an unknown email: neither the body nor the timing tells whether the
    account exists. Attempts past the login rate limits are refused (429) before any bcrypt
    work is spent.
    """
    address = request.client.host if request.client is not None else "unknown"
    services.login_limiter.check(address=address, account=body.email)
    record = await _load_user_by_email(services, body.email)
    await services.storage.with_storage_traced(
        "login", lambda c: c.refresh_user(body.email, record)
    )
    ok = await services.passwords.verify(
        body.password, record.password_hash if record is not None else None
    )
    if record is None or not ok:
        raise InvalidCredentials()
    token = services.tokens.issue(user_id=record.id, email=record.email)
    return TokenOut(access_token=token, expires_in=services.tokens.ttl_s)


@router.get("/me", response_model=UserOut, responses=error_responses(401, 503))
async def me(claims: CurrentClaims, services: ServicesDep) -> UserOut:
    """The account the bearer token belongs to."""
    storage = services.storage
    record = await storage.with_storage_traced("me", lambda c: c.users.get(claims.email))
    if record is None or record.id != claims.user_id:
        record = await _load_user_by_id(services, claims.user_id)
        if record is None:
            raise Unauthorized("the token's user no longer exists")
        found = record
        await storage.with_storage_traced("me", lambda c: c.put_user(found))
    return _user_out(record)


async def _load_user_by_email(services: ServicesDep, email: str) -> UserRecord | None:
    async with services.database.read_session() as session:
        user = await session.scalar(select(User).where(User.email == email))
        return user.record() if user is not None else None


async def _load_user_by_id(services: ServicesDep, user_id: int) -> UserRecord | None:
    async with services.database.read_session() as session:
        user = await session.get(User, user_id)
        return user.record() if user is not None else None


def _user_out(record: UserRecord) -> UserOut:
    return UserOut(id=record.id, email=record.email, created_at=record.created_at)
