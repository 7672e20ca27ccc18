"""pytest plugin: a simulated busgate board and a client for it.

Fixtures:
- `busgate_board`: the board (session scope). Started from `--busgate-board` (default
  `boards/sim.toml`) on a free port, or, with `--busgate-host`, a board already running there.
- `busgate`: a `Client` subscribed to the board, which fails the test on any payload that
  breaks its JSON Schema. With `--busgate-user` (and `--busgate-password-file` or
  $BUSGATE_PASSWORD) it logs in.
"""

import pytest

from .board import SimBoard
from .client import Client
from .tail import password_from


def pytest_addoption(parser):
    group = parser.getgroup("busgate")
    group.addoption("--busgate-board", default="boards/sim.toml", help="board file to simulate")
    group.addoption("--busgate-host", default=None, help="use the board running at this broker host")
    group.addoption("--busgate-port", type=int, default=1883, help="its broker port")
    group.addoption("--busgate-name", default="sim", help="its board name")
    group.addoption("--busgate-user", default=None, help="log in as this user (a broker closed to anonymous clients)")
    group.addoption("--busgate-password-file", default=None,
                    help="that user's password, first line of this file (or $BUSGATE_PASSWORD)")


class RunningBoard:
    def __init__(self, host, port, board):
        self.host, self.port, self.board = host, port, board


@pytest.fixture(scope="session")
def busgate_board(request):
    host = request.config.getoption("--busgate-host")
    if host:
        yield RunningBoard(host, request.config.getoption("--busgate-port"), request.config.getoption("--busgate-name"))
        return
    with SimBoard(request.config.getoption("--busgate-board")) as board:
        yield board


@pytest.fixture
def busgate(busgate_board, request):
    user = request.config.getoption("--busgate-user")
    password = password_from(request.config.getoption("--busgate-password-file")) if user else None
    client = Client(busgate_board.host, busgate_board.port, busgate_board.board, username=user, password=password)
    try:
        yield client
        client.check()
    finally:
        client.close()
