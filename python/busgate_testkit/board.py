"""A simulated board: busgate's broker and gateways, started from a board file on a free port."""

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

READY = "busgate broker ready"
GATEWAYS = {"i2c": "i2c-gateway", "spi": "spi-gateway", "can": "can-gateway"}


def repo_root() -> pathlib.Path:
    """The busgate checkout: $BUSGATE_ROOT, or the one this package lives in."""
    if "BUSGATE_ROOT" in os.environ:
        return pathlib.Path(os.environ["BUSGATE_ROOT"])
    return pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gateway_programs(board_text: str):
    """The gateway programs a board needs: one per bus kind that has devices, and CAN."""
    if tomllib is not None:
        board = tomllib.loads(board_text)
        buses = {bus["name"]: bus["kind"] for bus in board.get("bus", [])}
        kinds = {buses[device["bus"]] for device in board.get("device", []) if device["bus"] in buses}
        kinds |= {kind for kind in buses.values() if kind == "can"}
    else:
        kinds = set(re.findall(r'^kind\s*=\s*"(\w+)"', board_text, re.MULTILINE))
    return [GATEWAYS[kind] for kind in sorted(kinds) if kind in GATEWAYS]


class SimBoard:
    """Starts the broker and gateways of `board_file` with every bus mocked, on a free port.

    Binaries come from `target/debug` of the checkout, built with cargo first unless
    BUSGATE_NO_BUILD is set. Simulated inputs hold still unless `still=False`. Use as a context
    manager, or call `start()` and `stop()`.
    """

    def __init__(self, board_file="boards/sim.toml", root=None, build=None, still=True):
        self.root = pathlib.Path(root) if root else repo_root()
        self.board_file = self.root / board_file
        self.build = build if build is not None else "BUSGATE_NO_BUILD" not in os.environ
        # Simulated inputs hold still (instead of drifting), so tests can assert exact values.
        self.still = still
        self.host = "127.0.0.1"
        self.port = free_port()
        self.processes = []
        self.board = None
        self.log = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        text = self.board_file.read_text()
        self.board = re.search(r'^name\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)
        # The same board on our own port: every listener address is replaced.
        text = re.sub(r'address\s*=\s*"[^"]*"', f'address = "{self.host}:{self.port}"', text)
        self.directory = tempfile.TemporaryDirectory(prefix="busgate-board-")
        board = pathlib.Path(self.directory.name) / self.board_file.name
        board.write_text(text)
        # Files the board names by relative path (DBC files, candump logs) come along.
        for entry in self.board_file.parent.iterdir():
            if entry.is_dir():
                shutil.copytree(entry, pathlib.Path(self.directory.name) / entry.name)
        gateways = gateway_programs(text)
        if self.build:
            packages = [arg for program in ["broker", *gateways] for arg in ("--package", program)]
            subprocess.run(["cargo", "build", "--quiet", *packages], cwd=self.root, check=True)
        binaries = self.root / "target" / "debug"
        # A board whose gateways log in: their passwords are made here, as the deploy installer
        # makes them on a board (`broker gen-password`, a password and its hash per gateway).
        if re.search(r'^credentials_dir\s*=', text, re.MULTILINE):
            credentials = pathlib.Path(self.directory.name) / "credentials"
            credentials.mkdir(mode=0o700)
            text = re.sub(r'^credentials_dir\s*=.*$', f'credentials_dir = "{credentials}"', text, flags=re.MULTILINE)
            board.write_text(text)
            for program in gateways:
                subprocess.run([binaries / "broker", "gen-password", "--out", credentials / f"{program}.password",
                                "--hash-out", credentials / f"{program}.hash"], check=True)
        broker = self._spawn([binaries / "broker", "--board", board, "--journal", "off"], "broker")
        self._wait_for_line(broker, READY, timeout=30)
        for program in gateways:
            self._spawn([binaries / program, "--board", board, "--mock", *(["--still"] if self.still else [])], program)
        return self

    def _spawn(self, command, name):
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        process.name = name
        process.lines = []
        process.ready = threading.Event()

        def read():
            for line in process.stderr:
                process.lines.append(line)
                self.log.append(f"[{name}] {line.rstrip()}")

        threading.Thread(target=read, daemon=True).start()
        self.processes.append(process)
        return process

    def _wait_for_line(self, process, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in process.lines):
                return
            if process.poll() is not None:
                raise RuntimeError(f"{process.name} exited: {''.join(process.lines)}")
            time.sleep(0.02)
        raise TimeoutError(f"{process.name} did not print {text!r} within {timeout} s")

    def stop(self):
        # Gateways first, so their clean offline status reaches the broker.
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        if getattr(self, "directory", None):
            self.directory.cleanup()
            self.directory = None


if __name__ == "__main__":
    # python -m busgate_testkit.board [boards/sim.toml]: run a board until Ctrl-C.
    with SimBoard(sys.argv[1] if len(sys.argv) > 1 else "boards/sim.toml") as running:
        print(f"board {running.board} on {running.host}:{running.port}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
