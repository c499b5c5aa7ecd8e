"""The token verifier on its own: a key the operator removed from identity's JWKS stops verifying
once the cached set is older than its maximum age, and an unreachable JWKS keeps the cached keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Keys
from notification.outbound.auth import AuthError, JwksVerifier


def test_a_removed_key_stops_verifying_after_the_maximum_age(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    token = keys.token("alice")
    # A maximum age of 0: every check refetches, so the test needs no clock.
    verifier = JwksVerifier(issuer="studycafe-identity", audience="studycafe", jwks_file=keys.jwks, max_age_s=0)
    assert verifier.verify(token).user_id == "alice"

    keys.jwks.write_text(json.dumps({"keys": []}))
    with pytest.raises(AuthError):
        verifier.verify(token)


def test_the_cached_keys_stay_when_the_jwks_cannot_be_read(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    token = keys.token("alice")
    verifier = JwksVerifier(issuer="studycafe-identity", audience="studycafe", jwks_file=keys.jwks, max_age_s=0)
    assert verifier.verify(token).user_id == "alice"

    keys.jwks.unlink()
    assert verifier.verify(token).user_id == "alice"


def test_a_long_maximum_age_keeps_the_cached_set(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    token = keys.token("alice")
    verifier = JwksVerifier(issuer="studycafe-identity", audience="studycafe", jwks_file=keys.jwks)
    assert verifier.verify(token).user_id == "alice"
    keys.jwks.write_text(json.dumps({"keys": []}))
    assert verifier.verify(token).user_id == "alice"
