"""Example test app for the SPI gateway, on the simulated board: run with `pytest examples/python`."""


def test_adc_reading_and_raw_transfer(busgate):
    busgate.sim("adc", "set_input", {"name": "ch2", "value": 1.0})
    reading = busgate.state("adc", lambda r: abs(r["values"]["ch2"]["value"] - 1.0) < 0.01)
    assert reading["values"]["ch2"]["unit"] == "V"
    reply = busgate.command("adc", "raw_transfer", {"data": "01a000"})  # single-ended channel 2
    assert reply["ok"], reply
    raw = bytes.fromhex(reply["values"]["data"]["value"])
    assert abs((((raw[1] & 0b11) << 8) | raw[2]) - 310) <= 1  # 1.0 V of 3.3 V on 10 bits


def test_raw_transfer_refused_where_the_board_does_not_allow_it(busgate):
    reply = busgate.command("oven", "raw_transfer", {"data": "00000000"})
    assert reply["error"]["kind"] == "not_allowed"


def test_thermocouple_fault_is_the_offline_reason(busgate):
    busgate.sim("oven", "set_input", {"name": "fault", "value": 1})
    offline = busgate.wait_for("busgate/sim/spi/+/oven/availability", lambda a: a["state"] == "offline")
    assert offline["reason"] == "thermocouple open circuit"
    busgate.sim("oven", "set_input", {"name": "fault", "value": 0})
    busgate.wait_for("busgate/sim/spi/+/oven/availability", lambda a: a["state"] == "online", timeout=20)


def test_relay_output(busgate):
    reply = busgate.command("io", "set_pin", {"pin": "gpa1", "level": True})
    assert reply["ok"], reply
    assert busgate.state("io", lambda r: r["values"]["gpa1"]["value"] is True)
