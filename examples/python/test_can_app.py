"""Example test app for the CAN gateway, on the simulated board: run with `pytest examples/python`.

The simulated ECU plays node ECU of boards/dbc/busgate-demo.dbc."""

import json
import uuid

CAN = "busgate/sim/can/can0"


def send(busgate, topic, action, args):
    """Publishes a command on `topic/set` and returns its reply from `topic/reply`."""
    request = uuid.uuid4().hex[:12]
    busgate.client.publish(f"{topic}/set", json.dumps({"v": 1, "id": request, "action": action, "args": args}), qos=1)
    return busgate.wait_for(f"{topic}/reply", lambda reply: reply.get("id") == request)


def test_engine_messages_arrive_decoded(busgate):
    engine = busgate.wait_for(f"{CAN}/EngineStatus/state")
    assert engine["signals"]["EngineSpeed"]["unit"] == "rpm"
    assert 0 <= engine["signals"]["EngineSpeed"]["value"] <= 8000


def test_a_lights_command_is_sent_and_mirrored_by_the_ecu(busgate):
    reply = send(busgate, f"{CAN}/LightsCommand", "send", {"HeadLights": "High"})
    assert reply["ok"], reply
    assert "HazardLights" in reply["note"]  # left out: its initial value went out, and the reply says so
    status = busgate.wait_for(f"{CAN}/LightsStatus/state", lambda s: s["signals"]["HeadLights"].get("label") == "High")
    assert status["signals"]["HeadLights"]["value"] == 2


def test_out_of_range_values_are_refused(busgate):
    reply = send(busgate, f"{CAN}/LightsCommand", "send", {"HeadLights": 7})
    assert reply["error"]["kind"] == "invalid_argument"
    assert "out of range" in reply["error"]["message"]


def test_bus_off_shows_on_the_bus_availability(busgate):
    assert send(busgate, f"{CAN}/bus", "send_raw", {"id": 0x7F0, "data": "01"})["ok"]
    busgate.client.publish(f"{CAN}/bus/sim", json.dumps({"v": 1, "id": "off", "action": "bus_off"}), qos=1)
    offline = busgate.wait_for(f"{CAN}/bus/availability", lambda a: a["state"] == "offline")
    assert offline["reason"] == "bus-off"
    busgate.client.publish(f"{CAN}/bus/sim", json.dumps({"v": 1, "id": "on", "action": "recover"}), qos=1)
    busgate.wait_for(f"{CAN}/bus/availability", lambda a: a["state"] == "online")
