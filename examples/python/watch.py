"""Watch a busgate board over MQTT and validate every payload against busgate's JSON Schemas.

    pip install -r examples/python/requirements.txt
    python3 examples/python/watch.py                      # the simulated board on 127.0.0.1:1883
    python3 examples/python/watch.py --command leds '{"action": "set_duty", "args": {"channel": 0, "duty": 0.5}}'

Exits non-zero on the first payload that does not match its schema.
"""

import argparse
import json
import pathlib
import sys
import uuid

import jsonschema
import paho.mqtt.client as mqtt

SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "crates" / "schema" / "schemas"
# The last topic level names the payload (see docs/topics.md).
SCHEMA_BY_LEAF = {
    "state": "reading.json",
    "reply": "reply.json",
    "availability": "availability.json",
    "status": "status.json",
    "health": "health.json",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--board", default="sim")
    parser.add_argument("--count", type=int, default=0, help="stop after this many messages (0: never)")
    parser.add_argument("--command", nargs=2, metavar=("DEVICE", "JSON"), help="send a command and print its reply")
    args = parser.parse_args()

    validators = {leaf: jsonschema.Draft202012Validator(json.loads((SCHEMAS / name).read_text()))
                  for leaf, name in SCHEMA_BY_LEAF.items()}
    request_id = uuid.uuid4().hex[:12]
    seen = 0
    failed = False
    replied = False

    def on_connect(client, userdata, flags, reason_code, properties):
        client.subscribe(f"busgate/{args.board}/#", qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        if args.command:
            device, body = args.command
            command = {"v": 1, "id": request_id, **json.loads(body)}
            # The device's set topic: find it from its state topic once seen, or build it for
            # the simulated board's I2C bus.
            client.publish(f"busgate/{args.board}/i2c/i2c1/{device}/set", json.dumps(command), qos=1)

    def on_message(client, userdata, message):
        nonlocal seen, failed, replied
        leaf = message.topic.rsplit("/", 1)[-1]
        if leaf not in validators:
            return
        payload = json.loads(message.payload)
        error = jsonschema.exceptions.best_match(validators[leaf].iter_errors(payload))
        if error is not None:
            field = "/".join(str(p) for p in error.absolute_path) or "(payload)"
            print(f"INVALID {message.topic}: field {field}: {error.message}", file=sys.stderr)
            failed = True
            client.disconnect()
            return
        print(f"{message.topic} {json.dumps(payload, ensure_ascii=False)}", flush=True)
        seen += 1
        if args.command and leaf == "reply" and payload.get("id") == request_id:
            replied = True
            print(f"reply: {'ok' if payload['ok'] else payload['error']['message']}", flush=True)
        if args.count and seen >= args.count and (replied or not args.command):
            client.disconnect()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{request_id}")
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port)
    client.loop_forever()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
