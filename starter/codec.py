"""AES-GCM payload encryption with key ids, so keys rotate without losing old cases.

Every payload the client or worker sends to Temporal (workflow input, update
and signal arguments, results, memo, summaries and details, activity inputs,
and failure messages) is encrypted with the current key. The id of that key
travels in the payload's metadata, so a payload written under an older key is
still decrypted as long as that key stays in the configured key ring.

Search attributes and workflow ids are never encrypted by Temporal, so they
must carry no personal data in any mode.

Keys come from configuration only:

- ``CASE_ENCRYPTION_KEYS``: entries ``KEY_ID=BASE64_KEY`` separated by commas
  or line breaks, or
- ``CASE_ENCRYPTION_KEYS_FILE``: a file with one ``KEY_ID=BASE64_KEY`` per line
  (``#`` starts a comment line).

A key is 16, 24 or 32 bytes (AES-128, AES-192 or AES-256) before base64. The
last entry encrypts new payloads unless ``CASE_ENCRYPTION_KEY_ID`` names
another. ``casedesk new-key`` prints a fresh entry.
"""

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEYS_ENV = "CASE_ENCRYPTION_KEYS"
KEYS_FILE_ENV = "CASE_ENCRYPTION_KEYS_FILE"
CURRENT_KEY_ENV = "CASE_ENCRYPTION_KEY_ID"
# AES-GCM's standard nonce length; a random nonce per payload.
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KeyConfigError(ValueError):
    """Invalid encryption settings. The message names the setting and the fix."""


class DecryptionError(ValueError):
    """A payload that the configured keys cannot decrypt."""


@dataclass(frozen=True)
class KeyRing:
    """The known AES keys by id, and the id of the one that encrypts new payloads."""

    keys: Mapping[str, bytes]
    current_key_id: str

    def __post_init__(self) -> None:
        if self.current_key_id not in self.keys:
            known = ", ".join(sorted(self.keys)) or "none"
            raise KeyConfigError(
                f"the current key id {self.current_key_id!r} is not among the "
                f"configured keys ({known}); set {CURRENT_KEY_ENV} to one of them"
            )

    @classmethod
    def parse(
        cls, text: str, *, source: str, current_key_id: str | None = None
    ) -> "KeyRing":
        """Parse ``KEY_ID=BASE64_KEY`` entries separated by commas or line breaks."""
        keys: dict[str, bytes] = {}
        for number, raw in enumerate(re.split(r"[,\n]", text), start=1):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            key_id, separator, encoded = entry.partition("=")
            key_id = key_id.strip()
            if not separator or not KEY_ID_PATTERN.fullmatch(key_id):
                raise KeyConfigError(
                    f"{source}: invalid entry number {number}; write KEY_ID=BASE64_KEY, "
                    "with a key id of letters, digits, '.', '_' or '-'"
                )
            if key_id in keys:
                raise KeyConfigError(f"{source}: key id {key_id!r} appears twice")
            keys[key_id] = _decode_key(encoded.strip(), key_id, source)
        if not keys:
            raise KeyConfigError(
                f"{source} contains no key; add a line KEY_ID=BASE64_KEY "
                "(casedesk new-key prints one)"
            )
        return cls(keys=keys, current_key_id=current_key_id or list(keys)[-1])


def _decode_key(encoded: str, key_id: str, source: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise KeyConfigError(
            f"{source}: the key {key_id!r} is not valid base64"
        ) from None
    if len(key) not in (16, 24, 32):
        raise KeyConfigError(
            f"{source}: the key {key_id!r} is {len(key)} bytes; an AES key is 16, 24 or "
            "32 bytes (casedesk new-key prints a 32-byte one)"
        )
    return key


def new_key_entry(key_id: str) -> str:
    """Return a ``KEY_ID=BASE64_KEY`` line with a fresh random 256-bit key."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyConfigError(
            f"invalid key id {key_id!r}; use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return f"{key_id}={base64.b64encode(secrets.token_bytes(32)).decode()}"


def key_ring_from_env(environ: Mapping[str, str] | None = None) -> KeyRing | None:
    """Return the configured key ring, or None when encryption is off."""
    env = os.environ if environ is None else environ
    inline = env.get(KEYS_ENV, "").strip()
    file_name = env.get(KEYS_FILE_ENV, "").strip()
    current = env.get(CURRENT_KEY_ENV, "").strip() or None
    if inline and file_name:
        raise KeyConfigError(
            f"both {KEYS_ENV} and {KEYS_FILE_ENV} are set; set only one of them"
        )
    if file_name:
        path = Path(file_name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise KeyConfigError(
                f"{KEYS_FILE_ENV}: cannot read {path}: {err.strerror}"
            ) from None
        return KeyRing.parse(text, source=str(path), current_key_id=current)
    if inline:
        return KeyRing.parse(inline, source=KEYS_ENV, current_key_id=current)
    if current:
        raise KeyConfigError(
            f"{CURRENT_KEY_ENV} is set but no keys are configured; "
            f"set {KEYS_ENV} or {KEYS_FILE_ENV}"
        )
    return None


class EncryptionCodec(PayloadCodec):
    """Encrypt payloads with AES-GCM under the current key, and decrypt under any known key.

    The whole serialized payload (data and metadata, so the JSON encoding too)
    is the plaintext, and the key id is its associated data, so a payload
    cannot be moved to another key id unnoticed. Payloads that are not
    encrypted pass through ``decode`` unchanged, so cases started before
    encryption was turned on stay readable.
    """

    def __init__(self, key_ring: KeyRing) -> None:
        self._ring = key_ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in key_ring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self._ring.current_key_id
        cipher = self._ciphers[key_id]
        encoded = []
        for payload in payloads:
            nonce = secrets.token_bytes(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            encoded.append(
                Payload(
                    metadata={
                        "encoding": ENCRYPTED_ENCODING,
                        KEY_ID_METADATA: key_id.encode(),
                    },
                    data=nonce + sealed,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
                decoded.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                known = ", ".join(sorted(self._ciphers))
                raise DecryptionError(
                    f"payload encrypted with key id {key_id!r}, which is not configured "
                    f"(known: {known}); add that key to {KEYS_ENV} or {KEYS_FILE_ENV}"
                )
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                plain = cipher.decrypt(nonce, sealed, key_id.encode())
            except InvalidTag:
                raise DecryptionError(
                    f"payload under key id {key_id!r} failed authentication: the key "
                    "with that id differs from the one that encrypted it, or the "
                    "payload was altered"
                ) from None
            original = Payload()
            original.ParseFromString(plain)
            decoded.append(original)
        return decoded


class NoKeysCodec(PayloadCodec):
    """A codec that leaves payloads unencrypted and rejects encrypted ones with the fix.

    Without it, a client or worker with no keys meets an encrypted payload as
    the payload converter's bare "Unknown payload encoding" error.
    """

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for payload in payloads:
            if payload.metadata.get("encoding") == ENCRYPTED_ENCODING:
                key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(
                    errors="replace"
                )
                raise DecryptionError(
                    f"payload encrypted with key id {key_id!r}, but no encryption keys "
                    f"are configured; set {KEYS_ENV} or {KEYS_FILE_ENV} as for the worker"
                )
        return list(payloads)


def with_encryption(
    converter: DataConverter, key_ring: KeyRing | None
) -> DataConverter:
    """Return ``converter`` with the encryption codec, or with ``NoKeysCodec`` without keys.

    Failure messages and stack traces are moved into an encoded payload too,
    because an error text can quote a value the customer sent.
    """
    if key_ring is None:
        return replace(converter, payload_codec=NoKeysCodec())
    return replace(
        converter,
        payload_codec=EncryptionCodec(key_ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
