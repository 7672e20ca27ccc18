"""busgate-tail: one readable line per message on a running board, or from a broker journal.

    busgate-tail                                  # everything on the board at 127.0.0.1:1883
    busgate-tail 'busgate/sim/i2c/#'              # a topic filter
    busgate-tail --journal /var/log/busgate/journal.jsonl 'busgate/+/+/+/ambient/#'

Trouble (failed replies, schema violations, a device or gateway going offline) is marked `!!`
and coloured red on a terminal; a device or gateway coming online is coloured green, unmarked.
"""

import argparse
import os
import json
import sys
import time

import paho.mqtt.client as mqtt

from .board import repo_root
from .schemas import Schemas

RED, GREEN, RESET = "\033[31m", "\033[32m", "\033[0m"


def classify(topic, payload):
    """'error' (marked), 'online' (coloured only), or None for an ordinary message."""
    leaf = topic.rsplit("/", 1)[-1]
    if not isinstance(payload, dict):
        return None
    if leaf == "reply" and payload.get("ok") is False:
        return "error"
    if leaf in ("availability", "status"):
        return "online" if payload.get("state") == "online" else "error"
    return None


def format_line(ts, topic, payload, problem=None, colour=False):
    """One line: time, topic, compact JSON (or hex), marked when it matters."""
    clock = ts[11:23] if len(ts) >= 23 else ts
    if isinstance(payload, (bytes, bytearray)):
        body = payload.hex()
        kind = None
    else:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        kind = classify(topic, payload)
    if problem:
        kind = "error"
        body += f"  <- {problem}"
    mark = "!! " if kind == "error" else "   "
    line = f"{clock} {mark}{topic} {body}"
    if colour and kind:
        line = (RED if kind == "error" else GREEN) + line + RESET
    return line


def now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def read_journal(path, pattern, schemas, colour, out):
    """Prints the journal file's lines whose topic matches `pattern`."""
    count = 0
    with open(path, encoding="utf-8") as journal:
        for text in journal:
            entry = json.loads(text)
            if not mqtt.topic_matches_sub(pattern, entry["topic"]):
                continue
            if "payload" in entry:
                payload = entry["payload"]
                problem = schemas.problem(entry["topic"], json.dumps(payload).encode())
            else:
                payload = bytes.fromhex(entry.get("payload_hex", ""))
                problem = None
            print(format_line(entry["ts"], entry["topic"], payload, problem, colour), file=out, flush=True)
            count += 1
    return count


def follow(host, port, pattern, schemas, colour, out, count=0, username=None, password=None):
    """Prints live traffic matching `pattern` until interrupted (or after `count` messages).
    Returns how many it printed; raises ConnectionRefusedError when the broker refuses the login."""
    seen = 0
    refused = None
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(c, userdata, flags, reason_code, properties):
        nonlocal refused
        if reason_code.is_failure:
            refused = str(reason_code)
            c.disconnect()
            return
        c.subscribe(pattern, qos=1)

    def on_message(c, userdata, message):
        nonlocal seen
        try:
            payload = json.loads(message.payload)
            problem = schemas.problem(message.topic, bytes(message.payload))
        except ValueError:
            payload, problem = bytes(message.payload), None
        print(format_line(now(), message.topic, payload, problem, colour), file=out, flush=True)
        seen += 1
        if count and seen >= count:
            c.disconnect()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port)
    try:
        client.loop_forever()
    except KeyboardInterrupt:
        pass
    if refused is not None:
        raise ConnectionRefusedError(f"the broker at {host}:{port} refused the login: {refused}")
    return seen


def password_from(path):
    """The password in `path` (its first line), or $BUSGATE_PASSWORD, or None."""
    if path:
        with open(path, encoding="utf-8") as file:
            return file.readline().rstrip("\r\n")
    return os.environ.get("BUSGATE_PASSWORD")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="busgate-tail", description=__doc__.splitlines()[0])
    parser.add_argument("filter", nargs="?", default="busgate/#", help="MQTT topic filter (default busgate/#)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--user", help="log in with this user name (a board whose broker is closed to anonymous clients)")
    parser.add_argument("--password-file", help="the user's password, first line of this file (or $BUSGATE_PASSWORD)")
    parser.add_argument("--journal", help="read this broker journal file instead of following live traffic")
    parser.add_argument("--count", type=int, default=0, help="stop after this many messages (live)")
    parser.add_argument("--colour", choices=["auto", "always", "never"], default="auto")
    args = parser.parse_args(argv)
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    schemas = Schemas(repo_root() / "crates" / "schema" / "schemas")
    if args.journal:
        read_journal(args.journal, args.filter, schemas, colour, sys.stdout)
    else:
        try:
            follow(args.host, args.port, args.filter, schemas, colour, sys.stdout, args.count,
                   args.user, password_from(args.password_file))
        except ConnectionRefusedError as refused:
            sys.exit(f"busgate-tail: {refused}")


if __name__ == "__main__":
    main()
