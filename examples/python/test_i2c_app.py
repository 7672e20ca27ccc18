"""Example test app for the I2C gateway, on the simulated board: run with `pytest examples/python`.

It uses the busgate test kit (`pip install -e python`): the `busgate` fixture starts the
simulated board once per session and checks every payload against the JSON Schemas.
"""


def test_ambient_reading_follows_the_simulated_input(busgate):
    busgate.sim("ambient", "set_input", {"name": "temperature", "value": 28.25})
    reading = busgate.state("ambient", lambda r: r["values"]["temperature"]["value"] == 28.25)
    assert reading["values"]["temperature"]["unit"] == "°C"
    assert reading["model"] == "BME280"


def test_led_command_is_acknowledged_and_reaches_the_chip(busgate):
    reply = busgate.command("leds", "set_duty", {"channel": 4, "duty": 0.75})
    assert reply["ok"], reply
    assert busgate.sim("leds", "inspect", {"name": "ch4"})["values"]["value"]["value"] == 0.75


def test_invalid_command_gets_a_clear_error(busgate):
    reply = busgate.command("leds", {"action": "set_duty", "args": {"channel": 16, "duty": 0.5}})
    assert not reply["ok"]
    assert reply["error"]["field"] == "args.channel"
    assert reply["error"]["expected"] == "an integer from 0 to 15"


def test_unplugged_sensor_goes_offline_and_comes_back(busgate):
    busgate.sim("supply", "remove")
    offline = busgate.wait_for("busgate/sim/i2c/+/supply/availability", lambda a: a["state"] == "offline")
    assert "no acknowledge" in offline["reason"]
    busgate.sim("supply", "restore")
    busgate.wait_for("busgate/sim/i2c/+/supply/availability", lambda a: a["state"] == "online", timeout=20)
