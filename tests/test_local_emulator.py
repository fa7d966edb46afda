"""The AWS emulator's process (local.emulator_server): kept-alive connections, and no orphan.

`python -m local` runs moto in a child process of its own; these tests start
that process as the stack does (local.emulator.Emulator) and talk to it over
raw HTTP, so they see exactly what botocore's connection pool would.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.config import REGION
from local.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
# Bounds for waiting on another process; the tests wait for an event, not a time.
# Only a guard against a hang: a busy 2-core CI box may take minutes to start a stack.
WAIT_SECONDS = 600
# moto does not check signatures; the credential's scope tells it the service.
S3_CREDENTIALS = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261123/us-east-1/s3/aws4_request,"
    " SignedHeaders=host, Signature=0"
}
_EMULATOR_STARTED = re.compile(r"Started the AWS emulator \(moto\) on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module", name="emulator")
def emulator_fixture() -> Iterator[Emulator]:
    emulator = Emulator()
    emulator.start()
    yield emulator
    emulator.stop()


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_until_refused(port: int) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while not refuses_connections(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_one_connection_carries_many_requests_bodies_and_all(emulator: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=30)
    connection.connect()
    first_socket = connection.sock

    def send(method: str, path: str, body: Any = None) -> tuple[int, str | None, bytes]:
        connection.request(method, path, body=body, headers=S3_CREDENTIALS)
        response = connection.getresponse()
        return response.status, response.getheader("Connection"), response.read()

    assert send("PUT", "/kept")[:2] == (200, None)
    # A body by Content-Length, then one in chunks, each followed by another request.
    assert send("PUT", "/kept/sized", b"sized body")[0] == 200
    assert send("PUT", "/kept/chunked", iter([b"chunked ", b"body"]))[0] == 200
    assert send("GET", "/kept/sized") == (200, None, b"sized body")
    assert send("GET", "/kept/chunked") == (200, None, b"chunked body")
    # A HEAD answer states the object's length and sends no body.
    connection.request("HEAD", "/kept/chunked", headers=S3_CREDENTIALS)
    head = connection.getresponse()
    assert (head.status, head.getheader("Content-Length"), head.read()) == (200, "12", b"")
    assert send("DELETE", "/kept/sized")[:2] == (204, None)
    assert send("GET", "/kept/missing")[0] == 404
    assert send("GET", "/_local/ses/sent-messages") == (200, None, b"[]")
    assert connection.sock is first_socket
    connection.close()


def test_a_client_that_asks_to_close_gets_its_connection_closed(emulator: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=30)
    connection.request("GET", "/_local/ses/sent-messages", headers={"Connection": "close"})
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"[]")
    assert response.getheader("Connection") == "close"
    assert response.will_close


def test_boto3_clients_work_through_the_emulator(emulator: Emulator) -> None:
    options = {
        "region_name": REGION,
        "endpoint_url": emulator.endpoint,
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }
    dynamodb = boto3.client("dynamodb", **options)
    dynamodb.create_table(
        TableName="kept",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    for number in range(5):
        dynamodb.put_item(TableName="kept", Item={"id": {"S": str(number)}})
    assert dynamodb.get_item(TableName="kept", Key={"id": {"S": "3"}})["Item"] == {"id": {"S": "3"}}
    s3 = boto3.client("s3", **options)
    s3.create_bucket(Bucket="kept-objects")
    s3.put_object(Bucket="kept-objects", Key="a", Body=b"x" * 100_000)
    assert s3.get_object(Bucket="kept-objects", Key="a")["Body"].read() == b"x" * 100_000


def test_stop_ends_the_emulator() -> None:
    emulator = Emulator()
    emulator.start()
    assert not refuses_connections(emulator.port)
    emulator.stop()
    assert refuses_connections(emulator.port)


def test_the_emulator_ends_with_a_stack_that_is_killed() -> None:
    # SIGKILL leaves the stack no chance to stop anything: the end of the
    # emulator's stdin stops it.
    stack = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from local.emulator import Emulator; e = Emulator(); e.start();"
            " print(e.port, flush=True); time.sleep(600)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stack.stdout is not None
    port = int(stack.stdout.readline())
    assert not refuses_connections(port)
    stack.kill()
    stack.wait()
    assert wait_until_refused(port)


def _takes_ctrl_c() -> None:
    # As a terminal's foreground process does. A suite started in the background by a
    # non-interactive shell (`nohup make test &`) passes SIGINT on ignored, and Python
    # keeps an ignored SIGINT: the stack would never see this test's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_startup_stops_the_emulator_too(tmp_path: Path) -> None:
    log_path = tmp_path / "stack.log"
    with log_path.open("wb") as log:
        stack = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env={**os.environ, "PORT": "0"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_takes_ctrl_c,
        )
    deadline = time.monotonic() + WAIT_SECONDS
    started = None
    while started is None and stack.poll() is None and time.monotonic() < deadline:
        started = _EMULATOR_STARTED.search(log_path.read_text())
        time.sleep(0.05)
    assert started, log_path.read_text()
    stack.send_signal(signal.SIGINT)
    assert stack.wait(timeout=WAIT_SECONDS) == 0
    output = log_path.read_text()
    assert "Stopping" in output
    assert "Traceback" not in output
    # The stack waited for the emulator to end before it exited.
    assert refuses_connections(int(started.group(1)))
