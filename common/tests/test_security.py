import uuid
from datetime import datetime, timedelta, timezone
from typing import get_args

import jwt
import pytest

from common.security import (PASSWORD_HASH_PROFILES, PasswordHashProfile, Passwords, TokenError, decode_token,
                             issue_token)

SECRET = "s" * 64


@pytest.mark.parametrize("profile", sorted(PASSWORD_HASH_PROFILES))
def test_password_hash_is_salted_argon2id_and_verifies(profile):
    passwords = Passwords(profile)
    first, second = passwords.hash("correct horse"), passwords.hash("correct horse")
    assert first.startswith("$argon2id$") and first != second
    assert passwords.verify(first, "correct horse")
    assert not passwords.verify(first, "wrong horse")


def test_the_settings_type_names_exactly_the_profiles_there_are():
    assert set(get_args(PasswordHashProfile)) == set(PASSWORD_HASH_PROFILES)


def test_the_default_profile_is_rfc_9106_low_memory():
    assert Passwords().hash("x").startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_a_hash_made_at_one_cost_verifies_at_another():
    """A service restarted with another profile still logs in the users it registered before."""
    stored = Passwords("cheapest").hash("correct horse")
    assert Passwords().verify(stored, "correct horse")


def test_verify_without_a_hash_fails_even_for_the_dummy_password():
    passwords = Passwords("cheapest")
    assert not passwords.verify(None, "not-a-real-password")
    assert not passwords.verify("garbage", "anything")


def test_token_round_trip_carries_subject_and_unique_jti():
    user = uuid.uuid4()
    first = decode_token(issue_token(user_id=user, secret=SECRET, ttl=timedelta(minutes=5)), secret=SECRET)
    second = decode_token(issue_token(user_id=user, secret=SECRET, ttl=timedelta(minutes=5)), secret=SECRET)
    assert first.subject == user and first.token_id != second.token_id


@pytest.mark.parametrize("make", [
    lambda: issue_token(user_id=uuid.uuid4(), secret=SECRET, ttl=timedelta(minutes=-1)),
    lambda: issue_token(user_id=uuid.uuid4(), secret="another-secret-" * 4, ttl=timedelta(minutes=5)),
    lambda: jwt.encode({"sub": str(uuid.uuid4()), "iat": 0, "exp": 4_000_000_000, "jti": "x"}, None,
                       algorithm="none"),
    lambda: jwt.encode({"sub": str(uuid.uuid4()), "exp": 4_000_000_000}, SECRET, algorithm="HS256"),
    lambda: jwt.encode({"sub": "not-a-uuid", "iat": 0, "exp": 4_000_000_000, "jti": "x"}, SECRET,
                       algorithm="HS256"),
    lambda: "not.a.token",
], ids=["expired", "other-secret", "alg-none", "missing-claims", "bad-subject", "malformed"])
def test_bad_tokens_are_refused_with_a_reason_that_names_no_secret(make, request):
    token = make()
    with pytest.raises(TokenError) as refused:
        decode_token(token, secret=SECRET)
    reason = str(refused.value)
    # The reason becomes RFC 6750's error_description: only an expired token is called expired,
    # and nothing of the secret or the token is repeated.
    assert ("expired" in reason) == (request.node.callspec.id == "expired"), reason
    assert SECRET not in reason and all(part not in reason for part in token.split(".") if len(part) >= 8)
    assert '"' not in reason and "\\" not in reason, "the reason must fit an HTTP quoted-string as it is"


def test_hs512_token_with_the_right_secret_is_refused():
    token = jwt.encode({"sub": str(uuid.uuid4()), "iat": datetime.now(timezone.utc),
                        "exp": datetime.now(timezone.utc) + timedelta(minutes=5), "jti": "x"},
                       SECRET, algorithm="HS512")
    with pytest.raises(TokenError):
        decode_token(token, secret=SECRET)
