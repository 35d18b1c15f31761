"""Password hashing (Argon2id) and JWT (HS256) primitives."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

import jwt
from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

# Argon2id cost profiles, by the name a PASSWORD_HASH_PROFILE setting gives.
PasswordHashProfile = Literal["rfc9106-low-memory", "cheapest"]
PASSWORD_HASH_PROFILES: dict[PasswordHashProfile, Parameters] = {
    # argon2-cffi's default: RFC 9106's low-memory recommendation (64 MiB, 3 passes), slow on purpose.
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    # The least work Argon2id can do: for test suites that register hundreds of users. Prod refuses it.
    "cheapest": profiles.CHEAPEST,
}
DEFAULT_PASSWORD_HASH_PROFILE: PasswordHashProfile = "rfc9106-low-memory"


class Passwords:
    """Salted Argon2id hashes at one cost profile."""

    def __init__(self, profile: PasswordHashProfile = DEFAULT_PASSWORD_HASH_PROFILE) -> None:
        self._hasher = PasswordHasher.from_parameters(PASSWORD_HASH_PROFILES[profile])
        # Verified when the username is unknown, so both failures cost the same time (no user enumeration).
        self._dummy_hash = self._hasher.hash("not-a-real-password")

    def hash(self, password: str) -> str:
        """Return a salted Argon2id hash of the password."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password against a stored hash; with no hash, burn the same time and fail."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


JWT_ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    subject: uuid.UUID
    token_id: str
    expires_at: datetime


class TokenError(Exception):
    """The token is refused; the message says why in words safe to send back (RFC 6750's error_description).

    The reasons are the ones a client can act on (log in again, send the token it was given); none
    says anything about the secret or the signature a forger could use.
    """


def issue_token(*, user_id: uuid.UUID, secret: str, ttl: timedelta, now: datetime | None = None) -> str:
    """Sign an access token with `sub`, `iat`, `exp` and a unique `jti`."""
    issued = now or datetime.now(timezone.utc)
    claims = {"sub": str(user_id), "iat": issued, "exp": issued + ttl, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_token(token: str, *, secret: str) -> TokenClaims:
    """Verify signature, algorithm and expiry; raise TokenError, saying which, on anything wrong."""
    try:
        # A fixed algorithm list is what defeats `alg: none` and algorithm-confusion tokens.
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM],
                            options={"require": ["sub", "iat", "exp", "jti"]})
        return TokenClaims(uuid.UUID(claims["sub"]), str(claims["jti"]),
                           datetime.fromtimestamp(claims["exp"], timezone.utc))
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("The access token expired.") from exc
    except jwt.DecodeError as exc:  # its signature fails (InvalidSignatureError), or it is not a JWT at all
        raise TokenError("The access token is malformed or its signature does not verify.") from exc
    except (jwt.PyJWTError, ValueError, TypeError) as exc:  # another algorithm, a claim missing or malformed
        raise TokenError("The access token was not issued by this service.") from exc
