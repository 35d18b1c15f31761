"""Password hashing (Argon2id) and JWT (HS256) primitives."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2-cffi's RFC 9106 low-memory profile: slow on purpose
# Verified when the username is unknown, so both failures cost the same time (no user enumeration).
_DUMMY_HASH = _hasher.hash("not-a-real-password")

JWT_ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    """Return a salted Argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password against a stored hash; with no hash, burn the same time and fail."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    subject: uuid.UUID
    token_id: str
    expires_at: datetime


class TokenError(Exception):
    """The token is missing a claim, expired, forged, or not HS256."""


def issue_token(*, user_id: uuid.UUID, secret: str, ttl: timedelta, now: datetime | None = None) -> str:
    """Sign an access token with `sub`, `iat`, `exp` and a unique `jti`."""
    issued = now or datetime.now(timezone.utc)
    claims = {"sub": str(user_id), "iat": issued, "exp": issued + ttl, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_token(token: str, *, secret: str) -> TokenClaims:
    """Verify signature, algorithm and expiry; raise TokenError on anything wrong."""
    try:
        # A fixed algorithm list is what defeats `alg: none` and algorithm-confusion tokens.
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM],
                            options={"require": ["sub", "iat", "exp", "jti"]})
        return TokenClaims(uuid.UUID(claims["sub"]), str(claims["jti"]),
                           datetime.fromtimestamp(claims["exp"], timezone.utc))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise TokenError(str(exc)) from exc
