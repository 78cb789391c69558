"""Subscription secrets: generated in Standard Webhooks form, encrypted at rest.

A secret is `whsec_` followed by the base64 of 32 random bytes; only its
Fernet ciphertext is stored. The keys come from `WEBHOOK_SECRET_KEYS` (newest
first: the first encrypts, every one decrypts, so keys can be rotated), or,
when that is empty, from one key derived from `SECRET_KEY`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import secrets as random
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

PREFIX = "whsec_"
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


class SecretFormatError(ValueError):
    """A supplied secret is not `whsec_` + base64 of 24 to 64 bytes."""


def secret_generate() -> str:
    """A new signing secret, `whsec_` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(random.token_bytes(32)).decode()


def secret_check(secret: str) -> None:
    """Raise SecretFormatError unless `secret` is a usable Standard Webhooks secret."""
    if not secret.startswith(PREFIX):
        raise SecretFormatError(f"Must start with {PREFIX}.")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SecretFormatError(f"Must be {PREFIX} followed by base64.") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise SecretFormatError(f"Must encode {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes; it encodes {len(key)}.")


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    # Imported on first use: cryptography costs a process about 8 MB, and a
    # worker that never signs a delivery never needs it.
    from cryptography.fernet import Fernet, MultiFernet

    if not keys:
        derived = hashlib.sha256(b"jobsite.webhooks.secrets:" + secret_key.encode()).digest()
        keys = (base64.urlsafe_b64encode(derived).decode(),)
    return MultiFernet([Fernet(key) for key in keys])


def _keys() -> MultiFernet:
    return _fernet(tuple(settings.WEBHOOK_SECRET_KEYS), settings.SECRET_KEY)


def secret_encrypt(secret: str) -> str:
    """The ciphertext stored for `secret`."""
    return _keys().encrypt(secret.encode()).decode()


def secret_decrypt(ciphertext: str) -> str:
    """The secret behind stored ciphertext; ValueError when no configured key opens it."""
    from cryptography.fernet import InvalidToken

    try:
        return _keys().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError("No key in WEBHOOK_SECRET_KEYS decrypts this secret.") from None
