"""The AES-GCM payload codec, its key ring and the data converter built from settings."""

import base64
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError

from starter.codec import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    DecryptionError,
    EncryptionCodec,
    KeyConfigError,
    KeyRing,
    NoKeysCodec,
    key_ring_from_env,
    new_key_entry,
)
from starter.config import data_converter

OLD_KEY = base64.b64encode(bytes(range(32))).decode()
NEW_KEY = base64.b64encode(bytes(range(100, 132))).decode()
SECRET_TEXT = "ann.lee@example.org"


def json_payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def ring(text: str, current: str | None = None) -> KeyRing:
    return KeyRing.parse(text, source="test", current_key_id=current)


async def test_round_trip_restores_payload() -> None:
    codec = EncryptionCodec(ring(f"k1={OLD_KEY}"))
    original = json_payload(SECRET_TEXT)

    [encrypted] = await codec.encode([original])
    [decrypted] = await codec.decode([encrypted])

    assert encrypted.metadata["encoding"] == ENCRYPTED_ENCODING
    assert encrypted.metadata[KEY_ID_METADATA] == b"k1"
    assert SECRET_TEXT.encode() not in encrypted.SerializeToString()
    assert b"json/plain" not in encrypted.SerializeToString()
    assert decrypted == original


async def test_same_payload_encrypts_differently() -> None:
    codec = EncryptionCodec(ring(f"k1={OLD_KEY}"))

    first, second = await codec.encode([json_payload("x"), json_payload("x")])

    assert first.data != second.data


async def test_rotated_ring_reads_old_payloads() -> None:
    old_codec = EncryptionCodec(ring(f"2026-01={OLD_KEY}"))
    rotated = EncryptionCodec(ring(f"2026-01={OLD_KEY}\n2026-06={NEW_KEY}"))
    [written_before] = await old_codec.encode([json_payload(SECRET_TEXT)])

    [written_after] = await rotated.encode([json_payload(SECRET_TEXT)])
    decoded = await rotated.decode([written_before, written_after])

    assert written_after.metadata[KEY_ID_METADATA] == b"2026-06"
    assert decoded == [json_payload(SECRET_TEXT), json_payload(SECRET_TEXT)]


async def test_current_key_id_overrides_last() -> None:
    codec = EncryptionCodec(ring(f"a={OLD_KEY},b={NEW_KEY}", current="a"))

    [encrypted] = await codec.encode([json_payload("x")])

    assert encrypted.metadata[KEY_ID_METADATA] == b"a"


async def test_removed_key_names_missing_id() -> None:
    [encrypted] = await EncryptionCodec(ring(f"gone={OLD_KEY}")).encode(
        [json_payload("x")]
    )
    codec = EncryptionCodec(ring(f"kept={NEW_KEY}"))

    with pytest.raises(DecryptionError) as caught:
        await codec.decode([encrypted])

    assert "'gone'" in str(caught.value)
    assert "kept" in str(caught.value)


async def test_altered_payload_fails_authentication() -> None:
    codec = EncryptionCodec(ring(f"k1={OLD_KEY}"))
    [encrypted] = await codec.encode([json_payload("x")])
    altered = Payload(
        metadata=dict(encrypted.metadata),
        data=encrypted.data[:-1] + bytes([encrypted.data[-1] ^ 1]),
    )

    with pytest.raises(DecryptionError, match="failed authentication"):
        await codec.decode([altered])


async def test_same_id_with_other_key_fails() -> None:
    [encrypted] = await EncryptionCodec(ring(f"k1={OLD_KEY}")).encode(
        [json_payload("x")]
    )

    with pytest.raises(DecryptionError, match="failed authentication"):
        await EncryptionCodec(ring(f"k1={NEW_KEY}")).decode([encrypted])


async def test_plain_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec(ring(f"k1={OLD_KEY}"))
    plain = json_payload("written before encryption was on")

    assert await codec.decode([plain]) == [plain]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "contains no key"),
        ("# only a comment", "contains no key"),
        ("k1", "write KEY_ID=BASE64_KEY"),
        (f"bad id={OLD_KEY}", "write KEY_ID=BASE64_KEY"),
        ("k1=not base64!", "not valid base64"),
        (f"k1={base64.b64encode(b'short').decode()}", "is 5 bytes"),
        (f"k1={OLD_KEY},k1={NEW_KEY}", "appears twice"),
    ],
)
def test_invalid_key_ring_rejected(text: str, expected: str) -> None:
    with pytest.raises(KeyConfigError, match=expected):
        ring(text)


def test_unknown_current_key_rejected() -> None:
    with pytest.raises(KeyConfigError, match="CASE_ENCRYPTION_KEY_ID"):
        ring(f"k1={OLD_KEY}", current="k2")


def test_errors_never_show_key_material() -> None:
    with pytest.raises(KeyConfigError) as caught:
        ring(f"k1={OLD_KEY},no separator {NEW_KEY}")

    assert OLD_KEY not in str(caught.value)
    assert NEW_KEY not in str(caught.value)


def test_key_file_is_read(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated June\nold={OLD_KEY}\nnew={NEW_KEY}\n")

    loaded = key_ring_from_env({"CASE_ENCRYPTION_KEYS_FILE": str(key_file)})

    assert loaded is not None
    assert loaded.current_key_id == "new"
    assert set(loaded.keys) == {"old", "new"}


def test_missing_key_file_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent"

    with pytest.raises(KeyConfigError, match=str(missing)):
        key_ring_from_env({"CASE_ENCRYPTION_KEYS_FILE": str(missing)})


def test_both_key_settings_rejected(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="set only one"):
        key_ring_from_env(
            {
                "CASE_ENCRYPTION_KEYS": f"k1={OLD_KEY}",
                "CASE_ENCRYPTION_KEYS_FILE": str(tmp_path / "keys"),
            }
        )


def test_key_id_without_keys_rejected() -> None:
    with pytest.raises(KeyConfigError, match="no keys are configured"):
        key_ring_from_env({"CASE_ENCRYPTION_KEY_ID": "k1"})


async def test_no_settings_means_no_encryption() -> None:
    converter = data_converter({})
    plain = json_payload(SECRET_TEXT)

    assert key_ring_from_env({}) is None
    assert isinstance(converter.payload_codec, NoKeysCodec)
    assert await converter.payload_codec.encode([plain]) == [plain]
    assert await converter.payload_codec.decode([plain]) == [plain]


async def test_no_keys_names_fix_for_encrypted() -> None:
    [encrypted] = await EncryptionCodec(ring(f"k1={OLD_KEY}")).encode(
        [json_payload("x")]
    )

    with pytest.raises(DecryptionError) as caught:
        await NoKeysCodec().decode([encrypted])

    assert "'k1'" in str(caught.value)
    assert "CASE_ENCRYPTION_KEYS" in str(caught.value)


def test_new_key_entry_is_usable() -> None:
    entry = new_key_entry("2026-12")

    loaded = ring(entry)

    assert loaded.current_key_id == "2026-12"
    assert len(loaded.keys["2026-12"]) == 32
    assert entry != new_key_entry("2026-12")


def test_new_key_entry_rejects_bad_id() -> None:
    with pytest.raises(KeyConfigError, match="invalid key id"):
        new_key_entry("has space")


async def test_converter_encrypts_failure_messages() -> None:
    converter = data_converter({"CASE_ENCRYPTION_KEYS": f"k1={OLD_KEY}"})
    failure = Failure()

    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert isinstance(
        converter.failure_converter, DefaultFailureConverterWithEncodedAttributes
    )
    await converter.encode_failure(ApplicationError(f"bounced: {SECRET_TEXT}"), failure)

    assert SECRET_TEXT.encode() not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert str(decoded) == f"bounced: {SECRET_TEXT}"
