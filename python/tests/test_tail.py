"""busgate-tail: readable lines, highlights, journal read-back with filters, live following."""

import io
import json
import subprocess
import sys

from busgate_testkit import Schemas, repo_root
from busgate_testkit.tail import format_line, read_journal

SCHEMAS = Schemas(repo_root() / "crates" / "schema" / "schemas")
TS = "2026-11-22T10:00:01.250Z"


def test_ordinary_reading_is_one_compact_line():
    line = format_line(TS, "busgate/sim/i2c/i2c1/ambient/state", {"v": 1, "values": {"t": {"value": 1}}})
    assert line == '10:00:01.250    busgate/sim/i2c/i2c1/ambient/state {"v":1,"values":{"t":{"value":1}}}'


def test_failed_reply_and_offline_are_marked():
    assert " !! " in format_line(TS, "busgate/sim/i2c/i2c1/leds/reply", {"ok": False})
    assert " !! " in format_line(TS, "busgate/sim/i2c/i2c1/leds/availability", {"state": "offline"})
    assert " !! " in format_line(TS, "busgate/sim/i2c-gateway/status", {"state": "offline"})
    assert " !! " not in format_line(TS, "busgate/sim/i2c/i2c1/leds/reply", {"ok": True})


def test_coming_online_is_not_marked():
    # Regression: a gateway or device coming online was marked as trouble.
    for topic in ("busgate/sim/i2c-gateway/status", "busgate/sim/i2c/i2c1/leds/availability"):
        line = format_line(TS, topic, {"state": "online"})
        assert line.startswith("10:00:01.250    busgate/"), line
        assert format_line(TS, topic, {"state": "online"}, colour=True).startswith("\033[32m")


def test_colour_only_when_asked():
    line = format_line(TS, "busgate/sim/i2c/i2c1/leds/availability", {"state": "offline"}, colour=True)
    assert line.startswith("\033[31m") and line.endswith("\033[0m")


def test_binary_payloads_are_hex():
    assert format_line(TS, "x/y", b"\x01\xff").endswith("x/y 01ff")


def write_journal(path):
    entries = [
        {"ts": TS, "topic": "busgate/sim/i2c/i2c1/ambient/state", "qos": 1, "retain": True, "bytes": 2, "payload": {"v": 2}},
        {"ts": TS, "topic": "busgate/sim/spi/spi0/adc/availability", "qos": 1, "retain": True, "bytes": 2,
         "payload": {"v": 1, "ts": TS, "state": "offline", "reason": "no response"}},
        {"ts": TS, "topic": "other/raw", "qos": 0, "retain": False, "bytes": 2, "payload_hex": "beef"},
    ]
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))


def test_journal_read_back_with_a_filter(tmp_path):
    journal = tmp_path / "journal.jsonl"
    write_journal(journal)
    out = io.StringIO()
    assert read_journal(journal, "busgate/sim/spi/#", SCHEMAS, False, out) == 1
    assert "!! busgate/sim/spi/spi0/adc/availability" in out.getvalue()
    out = io.StringIO()
    assert read_journal(journal, "#", SCHEMAS, False, out) == 3
    lines = out.getvalue().splitlines()
    # A reading that breaks its schema is flagged with the field.
    assert "<- busgate/sim/i2c/i2c1/ambient/state: field" in lines[0], lines[0]
    assert lines[2].endswith("other/raw beef")


def test_follows_a_running_board(busgate_board):
    def tail(pattern, count):
        result = subprocess.run(
            [sys.executable, "-m", "busgate_testkit.tail", "--port", str(busgate_board.port), "--count", str(count),
             pattern],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == count, result.stdout
        return lines

    # The gateways' retained status: online, so not marked as trouble.
    board = busgate_board.board
    lines = tail(f"busgate/{board}/+/status", 3)
    for gateway in ("i2c-gateway", "spi-gateway", "can-gateway"):
        assert any(f"    busgate/{board}/{gateway}/status" in line for line in lines), lines
    assert not any("!!" in line for line in lines), lines
    # Readings follow as they come.
    lines = tail(f"busgate/{board}/i2c/+/+/state", 5)
    assert all("/state {" in line for line in lines), lines
