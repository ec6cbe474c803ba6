"""`casedesk codec-server` as a real process: encode, decode, bearer token and CORS."""

import base64
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from starter.devserver import dev_server_command
from tests.conftest import BIN
from tests.test_devserver import free_port

TEST_KEYS = (
    f"2026-01={base64.b64encode(bytes(range(32))).decode()},"
    f"2026-06={base64.b64encode(bytes(range(50, 82))).decode()}"
)
TEST_TOKEN = "test-token-7f3a9c"
UI_ORIGIN = "http://localhost:18233"


@dataclass
class CodecServer:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def running_codec_server(keys: str = TEST_KEYS) -> Iterator[CodecServer]:
    """Run ``casedesk codec-server`` on a free loopback port until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "CASE_ENCRYPTION_KEYS": keys,
        "CASE_CODEC_TOKEN": TEST_TOKEN,
        "CASE_CODEC_UI_ORIGIN": UI_ORIGIN,
    }
    env.pop("CASE_ENCRYPTION_KEYS_FILE", None)
    process = subprocess.Popen(
        [str(BIN / "casedesk"), "codec-server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, process)
        yield CodecServer(url=f"http://127.0.0.1:{port}", process=process)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    # Bounded by a count of attempts, not a time budget: start-up speed is
    # not under test here.
    for _ in range(300):
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"codec server exited with {process.returncode}: {stderr}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"codec server did not listen on port {port}")


@pytest.fixture(scope="module")
def codec_server() -> Iterator[CodecServer]:
    with running_codec_server() as server:
        yield server


def payloads_json(*texts: str) -> str:
    payloads = Payloads(
        payloads=[
            Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())
            for text in texts
        ]
    )
    return json_format.MessageToJson(payloads)


def parse_payloads(body: str) -> list[Payload]:
    return list(json_format.Parse(body, Payloads()).payloads)


def auth(token: str = TEST_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def post(
    url: str, body: str, headers: dict[str, str]
) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def test_encode_then_decode_round_trips(codec_server: CodecServer) -> None:
    status, encoded_body, _ = await post(
        f"{codec_server.url}/encode", payloads_json("Ann Lee", "x"), auth()
    )
    assert status == 200
    encoded = parse_payloads(encoded_body)
    assert [p.metadata["encoding"] for p in encoded] == [b"binary/encrypted"] * 2
    assert all(p.metadata["encryption-key-id"] == b"2026-06" for p in encoded)
    assert b"Ann Lee" not in b"".join(p.data for p in encoded)

    status, decoded_body, _ = await post(
        f"{codec_server.url}/decode", encoded_body, auth()
    )

    assert status == 200
    decoded = parse_payloads(decoded_body)
    assert [p.data for p in decoded] == [b'"Ann Lee"', b'"x"']


async def test_missing_token_gets_401(codec_server: CodecServer) -> None:
    status, body, headers = await post(
        f"{codec_server.url}/decode",
        payloads_json("x"),
        {"Content-Type": "application/json"},
    )

    assert status == 401
    assert headers.get("WWW-Authenticate") == "Bearer"
    assert "missing" in body


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", f"Basic {TEST_TOKEN}", TEST_TOKEN]
)
async def test_wrong_token_gets_403(
    codec_server: CodecServer, authorization: str
) -> None:
    status, body, _ = await post(
        f"{codec_server.url}/decode",
        payloads_json("x"),
        {"Authorization": authorization, "Content-Type": "application/json"},
    )

    assert status == 403
    assert "invalid bearer token" in body


async def test_ui_origin_gets_cors_headers(codec_server: CodecServer) -> None:
    status, _, headers = await post(
        f"{codec_server.url}/encode",
        payloads_json("x"),
        {**auth(), "Origin": UI_ORIGIN},
    )

    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == UI_ORIGIN


async def test_preflight_allows_ui_origin(codec_server: CodecServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.options(
            f"{codec_server.url}/decode",
            headers={
                "Origin": UI_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        ) as response,
    ):
        headers = dict(response.headers)

        assert response.status == 204
    assert headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert "x-namespace" in headers["Access-Control-Allow-Headers"]
    assert "authorization" in headers["Access-Control-Allow-Headers"]


async def test_other_origin_rejected(codec_server: CodecServer) -> None:
    status, _, headers = await post(
        f"{codec_server.url}/decode",
        payloads_json("x"),
        {**auth(), "Origin": "http://evil.example"},
    )

    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers


async def test_other_origin_preflight_rejected(codec_server: CodecServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.options(
            f"{codec_server.url}/decode",
            headers={
                "Origin": "http://localhost:9999",
                "Access-Control-Request-Method": "POST",
            },
        ) as response,
    ):
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_invalid_json_gets_400(codec_server: CodecServer) -> None:
    status, body, _ = await post(f"{codec_server.url}/decode", "{not json", auth())

    assert status == 400
    assert "invalid Payloads JSON" in body


async def test_unknown_key_id_gets_422(codec_server: CodecServer) -> None:
    foreign = Payloads(
        payloads=[
            Payload(
                metadata={
                    "encoding": b"binary/encrypted",
                    "encryption-key-id": b"retired",
                },
                data=b"\x00" * 40,
            )
        ]
    )

    status, body, _ = await post(
        f"{codec_server.url}/decode", json_format.MessageToJson(foreign), auth()
    )

    assert status == 422
    assert "'retired'" in body


async def test_rotation_keeps_old_payloads_readable() -> None:
    first_key = TEST_KEYS.split(",")[0]
    with running_codec_server(keys=first_key) as old_server:
        _, encoded_body, _ = await post(
            f"{old_server.url}/encode", payloads_json("old case"), auth()
        )
    with running_codec_server() as rotated_server:
        status, decoded_body, _ = await post(
            f"{rotated_server.url}/decode", encoded_body, auth()
        )

    assert status == 200
    assert parse_payloads(decoded_body)[0].data == b'"old case"'


def test_server_refuses_to_start_without_token() -> None:
    env = {**os.environ, "CASE_ENCRYPTION_KEYS": TEST_KEYS}
    env.pop("CASE_CODEC_TOKEN", None)

    completed = subprocess.run(
        [str(BIN / "casedesk"), "codec-server", "--port", str(free_port())],
        env=env,
        capture_output=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert b"CASE_CODEC_TOKEN" in completed.stderr


def test_server_refuses_to_start_without_keys() -> None:
    env = {**os.environ, "CASE_CODEC_TOKEN": TEST_TOKEN}
    env.pop("CASE_ENCRYPTION_KEYS", None)
    env.pop("CASE_ENCRYPTION_KEYS_FILE", None)

    completed = subprocess.run(
        [str(BIN / "casedesk"), "codec-server", "--port", str(free_port())],
        env=env,
        capture_output=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert b"no encryption keys are configured" in completed.stderr


def test_server_listens_on_loopback_only(codec_server: CodecServer) -> None:
    port = int(codec_server.url.rsplit(":", 1)[1])
    listening = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=30
    )

    local_addresses = [line.split()[3] for line in listening.stdout.splitlines()]

    assert local_addresses == [f"127.0.0.1:{port}"]


def test_dev_command_sets_ui_codec_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASE_UI_CODEC_ENDPOINT", "http://127.0.0.1:8081")

    command = dev_server_command(Path("var"), 7233, 8233)

    flag = command.index("--ui-codec-endpoint")
    assert command[flag + 1] == "http://127.0.0.1:8081"


def test_dev_command_without_codec_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASE_UI_CODEC_ENDPOINT", raising=False)

    command = dev_server_command(Path("var"), 7233, 8233)

    assert "--ui-codec-endpoint" not in command
