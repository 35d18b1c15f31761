"""Registration, login and token checks."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from common.errors import InvalidCredentials, InvalidToken, UsernameTaken
from common.models import User
from common.security import Passwords, TokenError, decode_token, issue_token

from ..repositories import users
from ..repositories.db import Database


@dataclass(frozen=True)
class TokenPolicy:
    secret: str
    ttl: timedelta


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_in: int


def register(*, database: Database, passwords: Passwords, username: str, password: str) -> User:
    """Create a user; raise UsernameTaken if the name is in use."""
    password_hash = passwords.hash(password)  # slow on purpose: hash before the transaction opens
    with database.unit_of_work() as session:
        try:
            user = users.add(session, User(username=username, password_hash=password_hash))
        except users.DuplicateUsername:
            raise UsernameTaken() from None
        session.commit()
    return user


def login(*, database: Database, passwords: Passwords, policy: TokenPolicy, username: str,
          password: str) -> AccessToken:
    """Issue an access token; unknown user and wrong password fail the same way, in the same time."""
    with database.unit_of_work() as session:
        user = users.by_username(session, username)
    verified = passwords.verify(user.password_hash if user else None, password)  # same cost either way
    if user is None or not verified:
        raise InvalidCredentials()
    token = issue_token(user_id=user.id, secret=policy.secret, ttl=policy.ttl)
    return AccessToken(token, int(policy.ttl.total_seconds()))


def authenticate(*, token: str, policy: TokenPolicy) -> uuid.UUID:
    """Return the user id a valid token speaks for; raise InvalidToken, saying why, for any bad token."""
    try:
        return decode_token(token, secret=policy.secret).subject
    except TokenError as refused:
        raise InvalidToken(str(refused)) from None
