"""Bearer tokens checked against identity's JWKS, like every Rust service does.

EdDSA (Ed25519) only; `iss`, `aud` and `exp` checked (30 s leeway, as the Rust verifier);
keys cached by `kid`, and a token naming an unknown `kid` refetches the set at most every few
seconds, so a key rotated in at identity works without a restart. The set is also refetched once
it is older than `AUTH_JWKS_MAX_AGE_SECS`, so a key the operator removed (a leaked one) stops
verifying within that time; if identity cannot be reached then, the cached keys stay in use.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import OKPAlgorithm

REFETCH_AFTER_S = 5.0


class AuthError(Exception):
    """The caller is not authenticated (401)."""


@dataclass(frozen=True)
class Caller:
    user_id: str
    roles: tuple[str, ...]


class JwksVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks_file: Path | None = None,
        max_age_s: float = 60.0,
    ) -> None:
        self._max_age_s = max_age_s
        self._issuer = issuer
        self._audience = audience
        self._url = jwks_url
        self._file = jwks_file
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        if self._file is not None:
            document = json.loads(self._file.read_text())
        else:
            assert self._url is not None
            with urllib.request.urlopen(self._url, timeout=5) as response:  # noqa: S310 — http(s) checked in config
                document = json.loads(response.read())
        keys = {}
        for jwk in document.get("keys", []):
            kid = jwk.get("kid")
            if kid and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                keys[kid] = OKPAlgorithm.from_jwk(json.dumps(jwk))
        return keys

    def _key(self, kid: str) -> Any:
        with self._lock:
            if self._fetched_at and time.monotonic() - self._fetched_at >= self._max_age_s:
                try:
                    self._keys = self._load()
                except (OSError, ValueError):
                    pass  # the cached keys were good a moment ago; try again after another max age
                self._fetched_at = time.monotonic()
            key = self._keys.get(kid)
            if key is not None:
                return key
            if time.monotonic() - self._fetched_at < REFETCH_AFTER_S and self._fetched_at:
                raise AuthError(f"the token's key {kid!r} is unknown")
            try:
                self._keys = self._load()
            except (OSError, ValueError) as e:
                raise AuthError(f"the signing keys cannot be fetched: {e}") from None
            finally:
                self._fetched_at = time.monotonic()
            key = self._keys.get(kid)
            if key is None:
                raise AuthError(f"the token's key {kid!r} is unknown")
            return key

    def verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise AuthError(f"malformed token: {e}") from None
        if header.get("alg") != "EdDSA":
            raise AuthError(f"algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("the token names no key (kid)")
        key = self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["EdDSA"],
                audience=self._audience,
                issuer=self._issuer,
                leeway=30,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as e:
            raise AuthError(f"invalid token: {e}") from None
        roles = claims.get("roles") or []
        return Caller(user_id=str(claims["sub"]), roles=tuple(str(r) for r in roles))
