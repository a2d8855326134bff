"""Database tables (SQLAlchemy 2 declarative)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.storage import ItemRecord, UserRecord

MAX_ROW_ID = 2**31 - 1
"""The largest id an ``Integer`` primary key holds on every backend (PostgreSQL's int4).

An id past it can name no row; it must be refused before it reaches the driver, which fails on
it (SQLite: OverflowError past 2**63 - 1; asyncpg: out of int32 range) with a 500.
"""


def utc_now() -> datetime:
    """Timestamps are stored in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC, so say so."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of the service's tables."""


class User(Base):
    """An account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    password_hash: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    def record(self) -> UserRecord:
        """The immutable copy kept in the storage cache."""
        return UserRecord(
            id=self.id,
            email=self.email,
            password_hash=self.password_hash,
            created_at=as_utc(self.created_at),
        )


class Item(Base):
    """A small resource owned by a user, so that load has reads and writes."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    def record(self) -> ItemRecord:
        """The immutable copy kept in the storage cache."""
        return ItemRecord(
            id=self.id,
            owner_id=self.owner_id,
            name=self.name,
            description=self.description,
            created_at=as_utc(self.created_at),
        )


class IdempotencyRecord(Base):
    """The first answer to a create sent with an ``Idempotency-Key`` (see service.idempotency).

    Written in the same transaction as the item it answers for: either both are committed or
    neither is, so a retry can never find the item without its answer, or the reverse.
    """

    __tablename__ = "idempotency_keys"

    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, index=True
    )
