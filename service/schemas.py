"""Request and response bodies shared by the routes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.errors import ErrorKind
from service.passwords import MAX_PASSWORD_BYTES

SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What ``str.strip()`` and Python's ``\\s`` call white space, spelled out: JSON Schema's ``\\s``
(ECMA-262) is another set, and the document must state exactly the rule applied here."""
_EMAIL_PART = rf"[^@{SPACE}\x00]+"
_EMAIL = re.compile(rf"{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}")
MIN_PASSWORD_CHARS = 8


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: stored as is, it fails in the driver (a 500), and
    # SQLite would keep a value PostgreSQL refuses.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _normalise_email(value: str) -> str:
    value = _no_nul(value).strip().lower()
    if not _EMAIL.fullmatch(value):
        raise ValueError("not an email address")
    return value


def _bcrypt_sized(value: str) -> str:
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit)")
    return value


# The document states the rules the validators apply (schemathesis checks that what it says is
# valid is accepted, and the rest refused): only as documentation, so the validators keep their
# own messages. The one rule JSON Schema cannot state is the password's 72 UTF-8 bytes.
EMAIL_PATTERN = rf"^[{SPACE}]*{_EMAIL.pattern}[{SPACE}]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=320,
        json_schema_extra={"pattern": EMAIL_PATTERN},
        description="An email address (surrounding spaces dropped, stored lower-case).",
    ),
    AfterValidator(_normalise_email),
]
Password = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_CHARS,
        json_schema_extra={"maxLength": MAX_PASSWORD_BYTES},
        description=f"At least {MIN_PASSWORD_CHARS} characters and at most "
        f"{MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit).",
    ),
    AfterValidator(_bcrypt_sized),
]


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields and coercions (a number is not a string)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Credentials(StrictBody):
    """Body of register and login."""

    email: Email
    password: Password


class UserOut(BaseModel):
    """A user as the API shows it (never the hash)."""

    id: int
    email: str
    created_at: datetime


class TokenOut(BaseModel):
    """A login's answer."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


class ItemIn(StrictBody):
    """Body of item creation."""

    name: Annotated[
        str,
        Field(min_length=1, max_length=200, json_schema_extra={"pattern": NO_NUL_PATTERN}),
        AfterValidator(_no_nul),
    ]
    description: Annotated[
        str,
        Field(max_length=2000, json_schema_extra={"pattern": NO_NUL_PATTERN}),
        AfterValidator(_no_nul),
    ] = ""


class ItemOut(BaseModel):
    """An item as the API shows it."""

    id: int
    owner_id: int
    name: str
    description: str
    created_at: datetime


class ItemPage(BaseModel):
    """One page of the caller's items, oldest first."""

    items: list[ItemOut]
    limit: int
    offset: int
    next_offset: int | None


class Health(BaseModel):
    """GET /health."""

    status: str


class VersionOut(BaseModel):
    """GET /version."""

    version: str
    git_commit: str
    python: str
    started_at: datetime


class ErrorBody(BaseModel):
    """What went wrong: the kind (a fixed vocabulary), a message safe to show, the trace id."""

    kind: ErrorKind
    message: str
    trace_id: str


class ErrorEnvelope(BaseModel):
    """Every error answer's body (DESIGN.md, contract 2), 422 included."""

    error: ErrorBody
