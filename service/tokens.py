"""Access tokens: JWT signed with HS256 (PyJWT); ``exp``, ``iat`` and ``sub`` are required."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from opentelemetry.trace import Tracer

from service.errors import Unauthorized
from service.models import MAX_ROW_ID
from service.tracing import child_span

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says."""

    user_id: int
    email: str


class TokenIssuer:
    """Issues and verifies the service's bearer tokens."""

    def __init__(self, secret: str, ttl_s: int, tracer: Tracer | None = None) -> None:
        """``tracer``: for the ``token.sign`` and ``token.verify`` spans (None: tracing off)."""
        self._secret = secret
        self.ttl_s = ttl_s
        self.tracer = tracer

    def issue(self, *, user_id: int, email: str) -> str:
        """A signed token for the user, valid for ``ttl_s`` seconds."""
        now = int(time.time())
        claims = {"sub": str(user_id), "email": email, "iat": now, "exp": now + self.ttl_s}
        with child_span(self.tracer, "token.sign"):
            return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> TokenClaims:
        """The token's claims; raises ``Unauthorized`` if it is bad, expired or unsigned."""
        with child_span(self.tracer, "token.verify"):
            return self._verify(token)

    def _verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # never "none", never a key-confusion algorithm
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None
        sub, email = claims.get("sub"), claims.get("email")
        # str.isdigit() also accepts digits int() refuses ("²") and any length: both would
        # fail later, as a 500, in int() or in the database driver.
        if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or len(sub) > 10:
            raise Unauthorized("invalid token")
        if not 1 <= int(sub) <= MAX_ROW_ID or not isinstance(email, str):
            raise Unauthorized("invalid token")
        return TokenClaims(user_id=int(sub), email=email)
