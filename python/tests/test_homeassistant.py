"""Home Assistant discovery on the simulated board, for every driver: each config has the keys
Home Assistant requires for its component, and its templates (rendered with Jinja2, as Home
Assistant does) extract a value from the state messages the gateways really publish."""

import json
import queue
import time

import jinja2
import paho.mqtt.client as mqtt

# Required by Home Assistant's MQTT discovery for each component (command_topic for
# controls), plus what busgate always provides.
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "switch": {"command_topic", "state_topic", "payload_on", "payload_off", "state_on", "state_off"},
    "number": {"command_topic", "command_template", "state_topic", "min", "max", "step"},
}
ALWAYS = {"name", "unique_id", "value_template", "availability", "availability_mode", "device"}
DRIVERS = {"BME280", "INA219", "PCA9685", "MCP3008", "MAX31855", "MCP23S17"}


def collect(board, seconds=3.0):
    """Every retained discovery config and the latest state of every device."""
    messages = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *a: c.subscribe([("homeassistant/#", 1), (f"busgate/{board.board}/#", 1)])
    client.on_message = lambda c, u, m: messages.put((m.topic, bytes(m.payload)))
    client.connect(board.host, board.port)
    client.loop_start()
    configs, states = {}, {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            topic, payload = messages.get(timeout=0.1)
        except queue.Empty:
            continue
        if topic.startswith("homeassistant/") and payload:
            configs[topic] = json.loads(payload)
        elif topic.endswith("/state"):
            states[topic] = json.loads(payload)
    client.loop_stop()
    client.disconnect()
    return configs, states


def test_every_driver_is_discovered_with_valid_templates(busgate_board):
    configs, states = collect(busgate_board)
    assert {config["device"]["model"] for config in configs.values()} == DRIVERS
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for topic, config in configs.items():
        component = topic.split("/")[1]
        missing = (REQUIRED[component] | ALWAYS) - config.keys()
        assert not missing, f"{topic} lacks {missing}"
        assert config["availability_mode"] == "all" and len(config["availability"]) == 2
        state = states[config["state_topic"]]
        value = env.from_string(config["value_template"]).render(value_json=state)
        assert value not in ("", "None"), f"{topic}: {config['value_template']} gives {value!r}"
        if component in ("switch", "binary_sensor"):
            assert value in ("ON", "OFF"), value
        else:
            float(value)
        for availability in config["availability"]:
            assert env.from_string(availability["value_template"]).render(value_json={"state": "online"}) == "online"
        if component == "number":
            command = env.from_string(config["command_template"]).render(value=0.5)
            assert json.loads(command)["args"]
        if component == "sensor" and config.get("unit_of_measurement") == "°C":
            assert config["device_class"] == "temperature"
