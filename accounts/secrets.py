"""Encryption at rest for the carrier credentials, with `cryptography`'s Fernet.

Keys come from RINGPOOL_ENCRYPTION_KEYS (comma-separated Fernet keys, newest first). Encryption uses the
first key; decryption tries every key, so the key itself can be rotated without downtime: put the new key
first, keep the old one after it until `rotate_encryption_key` has re-encrypted every row, then drop it.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MISSING_ENCRYPTION_KEYS = (
    "RINGPOOL_ENCRYPTION_KEYS is not set. With DEBUG off (production) it must come from the environment: "
    "generate one with python -c "
    '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())". '
    "For the demo, run commands through bin/manage instead: it has the demo's settings (DEBUG on)."
)


class UndecryptableSecret(Exception):
    """A stored secret that none of the configured keys opens (a key missing from the environment)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(MISSING_ENCRYPTION_KEYS)
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as error:  # never echo the key itself
        raise ImproperlyConfigured(
            "RINGPOOL_ENCRYPTION_KEYS holds a value that is not a Fernet key"
        ) from error


def _configured() -> MultiFernet:
    return _fernet(tuple(settings.RINGPOOL_ENCRYPTION_KEYS))


def encryption_configured() -> bool:
    try:
        _configured()
    except ImproperlyConfigured:
        return False
    return True


def encrypt(plain: str) -> str:
    """The ciphertext of `plain` ("" stays ""): what the database stores."""
    return _configured().encrypt(plain.encode()).decode() if plain else ""


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _configured().decrypt(ciphertext.encode()).decode()
    except InvalidToken as error:
        raise UndecryptableSecret("no configured encryption key opens this secret") from error


def reencrypt(ciphertext: str) -> str:
    """The same secret under the newest key (for key rotation)."""
    return _configured().rotate(ciphertext.encode()).decode() if ciphertext else ""
