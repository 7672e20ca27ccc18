"""A board whose broker is closed to anonymous clients, as a real board is: the kit makes the
gateways' passwords as the deploy installer does, and a test logs in as an application."""

import os
import subprocess
import sys

import pytest

from busgate_testkit import Client, SimBoard, repo_root

BOARD = """
[board]
name = "locked"
target = "x86_64-unknown-linux-gnu"

[broker.listeners.local]
address = "127.0.0.1:1883"
anonymous = false

[broker.users.app]
password_hash = "{hash}"
subscribe = ["busgate/locked/#"]
publish = ["busgate/locked/+/+/+/set"]

[gateway]
credentials_dir = "/etc/busgate/credentials"

[[bus]]
name = "i2c1"
kind = "i2c"
mock = true

[[device]]
name = "ambient"
bus = "i2c1"
driver = "bme280"
address = 0x76
poll_ms = 200
"""

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def locked_board(tmp_path_factory):
    root = repo_root()
    if "BUSGATE_NO_BUILD" not in os.environ:
        subprocess.run(["cargo", "build", "--quiet", "--package", "broker"], cwd=root, check=True)
    hashed = subprocess.run([root / "target" / "debug" / "broker", "hash-password"], input=PASSWORD + "\n",
                            capture_output=True, text=True, check=True).stdout.strip()
    path = tmp_path_factory.mktemp("locked") / "locked.toml"
    path.write_text(BOARD.format(hash=hashed))
    with SimBoard(path) as board:
        yield board


def test_anonymous_and_wrong_passwords_are_refused(locked_board):
    with pytest.raises(ConnectionRefusedError, match="without a user name: Not authorized"):
        Client(locked_board.host, locked_board.port, locked_board.board)
    with pytest.raises(ConnectionRefusedError, match="as 'app': Bad user name or password"):
        Client(locked_board.host, locked_board.port, locked_board.board, username="app", password="wrong")


def test_the_gateway_logs_in_with_its_made_password_and_the_app_reads(locked_board):
    with Client(locked_board.host, locked_board.port, locked_board.board, username="app", password=PASSWORD) as client:
        status = client.wait_for("busgate/locked/i2c-gateway/status", lambda p: p["state"] == "online")
        assert status["gateway"] == "i2c-gateway"
        reading = client.wait_for("busgate/locked/i2c/i2c1/ambient/state")
        assert "temperature" in reading["values"]
        client.check()


def test_tail_logs_in(locked_board):
    command = [sys.executable, "-m", "busgate_testkit.tail", "--port", str(locked_board.port), "--count", "1",
               "--user", "app", "busgate/locked/i2c-gateway/status"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "BUSGATE_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    assert "busgate/locked/i2c-gateway/status" in result.stdout
    result = subprocess.run(command, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "BUSGATE_PASSWORD": "wrong"})
    assert result.returncode != 0
    assert "refused the login" in result.stderr, result.stderr
