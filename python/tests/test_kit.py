"""The test kit's own tests: schema checks, board parsing, and the client against a real board."""

import json

import pytest

from busgate_testkit import SchemaViolation, Schemas, repo_root
from busgate_testkit.board import gateway_programs

SCHEMAS = Schemas(repo_root() / "crates" / "schema" / "schemas")

READING = {
    "v": 1,
    "ts": "2026-11-22T10:00:00.000Z",
    "seq": 3,
    "device": "ambient",
    "model": "BME280",
    "values": {"temperature": {"value": 21.5, "unit": "°C"}},
}


def test_valid_reading_passes():
    assert SCHEMAS.problem("busgate/sim/i2c/i2c1/ambient/state", json.dumps(READING).encode()) is None


def test_violation_names_topic_and_field():
    bad = dict(READING, seq=-1)
    problem = SCHEMAS.problem("busgate/sim/i2c/i2c1/ambient/state", json.dumps(bad).encode())
    assert problem.startswith("busgate/sim/i2c/i2c1/ambient/state: field seq:"), problem


def test_not_json_is_a_violation():
    assert "not JSON" in SCHEMAS.problem("busgate/sim/i2c-gateway/status", b"\xff")


def test_unknown_leaves_are_not_checked():
    assert SCHEMAS.problem("somewhere/else", b"anything") is None


def test_gateway_programs_follow_the_board():
    text = (repo_root() / "boards" / "sim.toml").read_text()
    assert gateway_programs(text) == ["can-gateway", "i2c-gateway", "spi-gateway"]


def test_can_payloads_are_checked_against_their_schemas():
    frame = {"v": 1, "ts": "2026-01-01T00:00:00.000Z", "bus": "can0", "id": 2047, "extended": False,
             "fd": False, "dlc": 2, "data": "0102"}
    assert SCHEMAS.problem("busgate/sim/can/can0/id-7FF/state", json.dumps(frame).encode()) is None
    problem = SCHEMAS.problem("busgate/sim/can/can0/Engine/state", json.dumps(frame).encode())
    assert problem.startswith("busgate/sim/can/can0/Engine/state: "), problem


def test_client_reports_schema_violations(busgate):
    # A payload published on a reading topic by someone else breaks the schema: the kit
    # fails the test that sees it, naming topic and field.
    busgate.publish_raw("ambient", "state", json.dumps(dict(READING, v=2)))
    with pytest.raises(SchemaViolation, match=r"ambient/state: field v"):
        busgate.wait_for("busgate/sim/i2c/i2c1/ambient/state", lambda r: r.get("v") == 2, timeout=5)
    busgate.violations.clear()


def test_unknown_device_lists_the_known_ones(busgate):
    busgate.state("ambient")
    with pytest.raises(KeyError, match="no device 'toaster'"):
        busgate.timeout = 0.5
        busgate.command("toaster", "toast")
