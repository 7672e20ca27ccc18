"""An MQTT client for tests against a busgate board."""

import json
import queue
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from .board import repo_root
from .schemas import Schemas


class SchemaViolation(AssertionError):
    """A payload the board published does not match its JSON Schema."""


class Message:
    def __init__(self, topic, payload, retain):
        self.topic = topic
        self.payload = payload
        self.retain = retain

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return f"{self.topic} {self.payload[:200]!r}"


class Client:
    """Subscribes to everything under `busgate/<board>/`, validating every payload.

    A payload that does not match its schema makes the next `wait_for` (and `check()`) fail
    with the topic and the offending field.
    """

    def __init__(self, host="127.0.0.1", port=1883, board="sim", schemas=None, timeout=10.0,
                 username=None, password=None):
        self.board = board
        self.timeout = timeout
        self.schemas = schemas or Schemas(repo_root() / "crates" / "schema" / "schemas")
        self.messages = queue.Queue()
        self.violations = []
        self.history = []
        # Device name -> its topic prefix (busgate/<board>/<kind>/<bus>/<device>), learnt from
        # what the board publishes.
        self.devices = {}
        self._devices_changed = threading.Condition()
        self._subscribed = threading.Event()
        self._refused = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"testkit-{uuid.uuid4().hex[:10]}")
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(timeout) or self._refused is not None:
            self.close()
            if self._refused is not None:
                login = f" as {username!r}" if username is not None else " without a user name"
                raise ConnectionRefusedError(f"the broker at {host}:{port} refused the login{login}: {self._refused}")
            raise TimeoutError(f"could not subscribe on {host}:{port}")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = str(reason_code)
            # Wake the constructor, and do not retry a login that cannot succeed.
            self._subscribed.set()
            client.disconnect()
            return
        client.subscribe(f"busgate/{self.board}/#", qos=1)

    def _on_message(self, client, userdata, message):
        problem = self.schemas.problem(message.topic, message.payload)
        if problem:
            self.violations.append(problem)
        levels = message.topic.split("/")
        if len(levels) == 6 and levels[5] in ("state", "availability"):
            with self._devices_changed:
                self.devices[levels[4]] = "/".join(levels[:5])
                self._devices_changed.notify_all()
        self.messages.put(Message(message.topic, bytes(message.payload), bool(message.retain)))

    def check(self):
        """Fails if any payload so far broke its schema."""
        if self.violations:
            raise SchemaViolation("; ".join(self.violations))

    def wait_for(self, pattern, predicate=None, timeout=None):
        """The next message on a topic matching `pattern` (MQTT wildcards allowed) for which
        `predicate(payload_as_json)` is true. Fails on timeout or on a schema violation."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                recent = "\n  ".join(repr(m) for m in self.history[-10:])
                raise TimeoutError(f"no message on {pattern} matched within {timeout or self.timeout} s; last seen:\n  {recent}")
            try:
                message = self.messages.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            self.history.append(message)
            self.check()
            if not mqtt.topic_matches_sub(pattern, message.topic):
                continue
            payload = message.json()
            if predicate is None or predicate(payload):
                return payload

    def topic(self, device, leaf):
        """A device's topic, once the board has published anything about the device."""
        with self._devices_changed:
            if not self._devices_changed.wait_for(lambda: device in self.devices, timeout=self.timeout):
                raise KeyError(f"no device {device!r} on board {self.board!r}; seen: {sorted(self.devices)}")
            return f"{self.devices[device]}/{leaf}"

    def state(self, device, predicate=None, timeout=None):
        """The device's next reading (its retained latest one first)."""
        return self.wait_for(self.topic(device, "state"), predicate, timeout)

    def command(self, device, action, args=None, timeout=None):
        """Sends a command and returns its reply (matched by id).

        `action` is the action name with `args` its arguments, or a whole command payload
        (`{"action": ..., "args": ...}`; `v` and `id` are filled in when absent)."""
        if isinstance(action, dict):
            return self._request(device, "set", action.get("action"), action.get("args"), timeout, action)
        return self._request(device, "set", action, args, timeout)

    def sim(self, device, action, args=None, timeout=None):
        """Fault injection on a mocked bus: remove, restore, bus_error, absent, transfer_error,
        set_input, inspect (see docs/topics.md)."""
        return self._request(device, "sim", action, args, timeout)

    def _request(self, device, leaf, action, args, timeout, payload=None):
        request_id = uuid.uuid4().hex[:12]
        body = {"v": 1, "id": request_id, "action": action}
        if args is not None:
            body["args"] = args
        if payload is not None:
            body = {"v": 1, **payload}
            request_id = body.setdefault("id", request_id)
        self.client.publish(self.topic(device, leaf), json.dumps(body), qos=1)
        return self.wait_for(self.topic(device, "reply"), lambda reply: reply.get("id") == request_id, timeout)

    def publish_raw(self, device, leaf, payload):
        """Publishes anything on a device topic, for testing how the gateway handles bad input."""
        self.client.publish(self.topic(device, leaf), payload, qos=1)
