"""The generated secrets every process shares (VAPID key, webhook secret, …), sealed under the secret key."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from ordercast.models import StoredSecret

SEALED_PREFIX = "fernet:"


class SecretUnreadable(RuntimeError):
    """A stored secret was sealed under a secret key this process doesn't have."""


class SecretBox:
    """Seals stored secrets with Fernet, its key derived (HKDF-SHA256) from `ORDERCAST_SECRET_KEY`."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"ordercast.stored-secrets").derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, value: str) -> str:
        return SEALED_PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, name: str, stored: str) -> str:
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED_PREFIX)).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"the stored secret {name!r} was sealed under another ORDERCAST_SECRET_KEY: "
                "configure that key again (or delete the row to generate a new secret)"
            ) from None


def secret_box(secret_key: str | None) -> SecretBox | None:
    """The box for the configured secret key; None when the key is itself generated (nothing to seal with)."""
    return SecretBox(secret_key) if secret_key else None


def _seal(value: str, box: SecretBox | None) -> str:
    return box.seal(value) if box is not None else value


async def _read(row: StoredSecret, box: SecretBox | None) -> str:
    if row.value.startswith(SEALED_PREFIX):
        if box is None:
            raise SecretUnreadable(f"the stored secret {row.name!r} is sealed: configure ORDERCAST_SECRET_KEY")
        return box.open(row.name, row.value)
    if box is not None:
        # Written in clear before secrets were sealed: seal it now, unless another process changed it meanwhile.
        await StoredSecret.filter(name=row.name, value=row.value).update(value=box.seal(row.value))
    return row.value


async def shared_secret(name: str, generate: Callable[[], str], box: SecretBox | None = None) -> str:
    """The secret `name`, generated and stored (sealed in `box`) by whichever process asks first."""
    found = await StoredSecret.get_or_none(name=name)
    if found is None:
        with contextlib.suppress(IntegrityError):  # another process stored it first; theirs wins
            await StoredSecret.create(name=name, value=_seal(generate(), box))
        found = await StoredSecret.get(name=name)
    return await _read(found, box)


async def replace_secret(name: str, value: str, box: SecretBox | None, conn: BaseDBAsyncClient) -> None:
    """Store `value` as the secret `name` (sealed in `box`), in the caller's transaction."""
    stored = _seal(value, box)
    if not await StoredSecret.filter(name=name).using_db(conn).update(value=stored):
        await StoredSecret.create(name=name, value=stored, using_db=conn)
