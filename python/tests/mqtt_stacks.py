"""Brokers and third-party MQTT client stacks for test_broker_delivery.py.

Brokers: busgate's broker process (plain TCP, TLS and a Unix socket, from a generated board file)
and Mosquitto (the oracle, the same three listeners). Client stacks, each as a subscriber that
records every message it receives and as a publisher: paho-mqtt (Python), the mosquitto
command-line clients, and a C client on the Paho C library (`clients/matrix_client.c`).
Every wait is for a condition, bounded by a timeout.
"""

import collections
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Optional

import paho.mqtt.client as mqtt
import pytest

from busgate_testkit.board import free_port, repo_root

TIMEOUT = 30.0
READY = "busgate broker ready"
MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
C_CLIENT_SOURCE = pathlib.Path(__file__).parent / "clients" / "matrix_client.c"
PROTOCOLS = {"3.1": mqtt.MQTTv31, "3.1.1": mqtt.MQTTv311}


def require(what: str, present: bool):
    """Skips the test when a third-party tool is missing, or fails it where CI requires it."""
    if present:
        return
    reason = f"{what} is not installed (apt-get install mosquitto mosquitto-clients gcc libpaho-mqtt-dev)"
    if os.environ.get("BUSGATE_REQUIRE_MOSQUITTO"):
        pytest.fail(f"BUSGATE_REQUIRE_MOSQUITTO is set but {reason}")
    pytest.skip(reason)


def mosquitto_binary() -> Optional[str]:
    return next((path for path in MOSQUITTO if os.access(path, os.X_OK)), None)


@dataclass(frozen=True)
class Endpoint:
    """Where a client connects: `transport` is "tcp", "tls" (checked against `ca`) or "unix"."""

    broker: str
    transport: str
    host: str = "127.0.0.1"
    port: int = 0
    ca: Optional[pathlib.Path] = None
    path: Optional[pathlib.Path] = None

    def __str__(self):
        return f"{self.broker} over {self.transport}"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: str
    qos: int
    dup: bool
    retain: bool


class BrokerProcess:
    """A broker process on three listeners; `endpoint(transport)` says how to reach each."""

    def __init__(self, name):
        self.name = name
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix=f"delivery-{name}-"))
        self.port, self.tls_port = free_port(), free_port()
        self.socket_path = self.directory / "mqtt.sock"
        self.process = None
        self.lines = []
        self._logged = threading.Condition()

    def endpoint(self, transport) -> Endpoint:
        if transport == "tcp":
            return Endpoint(self.name, "tcp", port=self.port)
        if transport == "tls":
            return Endpoint(self.name, "tls", port=self.tls_port, ca=self.directory / "ca.pem")
        return Endpoint(self.name, "unix", path=self.socket_path)

    def _spawn(self, command):
        self.process = subprocess.Popen([str(part) for part in command], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def read():
            for line in self.process.stderr:
                with self._logged:
                    self.lines.append(line.rstrip())
                    self._logged.notify_all()
            with self._logged:
                self._logged.notify_all()

        threading.Thread(target=read, daemon=True).start()

    def wait_for_line(self, text, timeout=TIMEOUT) -> bool:
        """Waits until the broker logged a line containing `text` (False if it exits first)."""
        with self._logged:
            return self._logged.wait_for(
                lambda: any(text in line for line in self.lines) or not self.alive(), timeout) and any(
                text in line for line in self.lines)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, count=30) -> str:
        return "\n".join(self.lines[-count:])

    def stop(self):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


class Busgate(BrokerProcess):
    """busgate's broker binary (target/debug, built first unless BUSGATE_NO_BUILD is set)."""

    def __init__(self):
        super().__init__("busgate")
        root = repo_root()
        if "BUSGATE_NO_BUILD" not in os.environ:
            subprocess.run(["cargo", "build", "--quiet", "--package", "broker"], cwd=root, check=True)
        binary = root / "target" / "debug" / "broker"
        subprocess.run([binary, "gen-certs", "--out", self.directory], check=True, capture_output=True)
        board = self.directory / "delivery.toml"
        board.write_text(f"""
[board]
name = "delivery"
target = "x86_64-unknown-linux-gnu"

[broker.listeners.plain]
address = "127.0.0.1:{self.port}"
anonymous = true

[broker.listeners.tls]
address = "127.0.0.1:{self.tls_port}"
anonymous = true
tls = {{ cert = "{self.directory / 'server.pem'}", key = "{self.directory / 'server.key'}" }}

[broker.sockets.local]
path = "{self.socket_path}"
mode = "600"
anonymous = true
""")
        self._spawn([binary, "--board", board, "--journal", "off"])
        if not self.wait_for_line(READY):
            self.stop()
            raise RuntimeError(f"busgate's broker did not start:\n{self.log_tail()}")


class Mosquitto(BrokerProcess):
    """Mosquitto with the same three listeners and busgate's development certificates.

    `allow_duplicate_messages true` (the default from Mosquitto 2.1 on): a message matching several
    of a client's subscriptions goes once per subscription at that subscription's QoS, which MQTT
    3.1.1 3.3.5 allows. Debian 12's Mosquitto 2.0.11 defaults to one copy, at the QoS of whichever
    matching subscription it finds last, not the highest as MQTT-3.3.5-1 demands (Mosquitto issue
    #3319), so that mode is no oracle.
    """

    def __init__(self, binary, certificates: pathlib.Path):
        super().__init__("mosquitto")
        for name in ("ca.pem", "server.pem", "server.key"):
            shutil.copy(certificates / name, self.directory / name)
        config = self.directory / "mosquitto.conf"
        # Run as root (CI), Mosquitto would switch to the mosquitto user, who cannot read the
        # temporary directory; as any other user this line does nothing.
        config.write_text(f"""
user {pwd.getpwuid(os.geteuid()).pw_name}
per_listener_settings false
allow_duplicate_messages true
allow_anonymous true
persistence false
log_dest stderr
listener {self.port} 127.0.0.1
listener {self.tls_port} 127.0.0.1
cafile {self.directory / 'ca.pem'}
certfile {self.directory / 'server.pem'}
keyfile {self.directory / 'server.key'}
listener 0 {self.socket_path}
""")
        self._spawn([binary, "-c", config])
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                if self.socket_path.exists():
                    break
            except OSError:
                pass
            if not self.alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start:\n{self.log_tail()}")
            time.sleep(0.02)


class Subscriber:
    """What one subscribing client received, in order, and anything that went wrong on its
    connection (a disconnect, a second CONNECT, an exit)."""

    def __init__(self, stack):
        self.stack = stack
        self.received = []
        self.problems = []
        self.granted = []
        self._changed = threading.Condition()

    def _add(self, message: Received):
        with self._changed:
            self.received.append(message)
            self._changed.notify_all()

    def _problem(self, text):
        with self._changed:
            self.problems.append(text)
            self._changed.notify_all()

    def wait_until(self, predicate, timeout=TIMEOUT) -> bool:
        """Waits until `predicate(received)` holds; False after `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.received), timeout)

    def snapshot(self):
        with self._changed:
            return list(self.received), list(self.problems)

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def client_id(stack):
    return f"{stack}-{uuid.uuid4().hex[:8]}"  # MQTT 3.1 allows 23 characters


def paho_client(endpoint: Endpoint, protocol: str, identity: str) -> mqtt.Client:
    transport = "unix" if endpoint.transport == "unix" else "tcp"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=identity, protocol=PROTOCOLS[protocol],
                         transport=transport)
    if endpoint.transport == "tls":
        client.tls_set(ca_certs=str(endpoint.ca))
    return client


def paho_connect(client: mqtt.Client, endpoint: Endpoint, connected: threading.Event):
    if endpoint.transport == "unix":
        client.connect(str(endpoint.path))
    else:
        client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    if not connected.wait(TIMEOUT):
        client.loop_stop()
        raise TimeoutError(f"paho: no CONNACK from {endpoint}")


class PahoSubscriber(Subscriber):
    """A paho-mqtt subscriber: one SUBSCRIBE per filter, each SUBACK awaited in turn."""

    def __init__(self, endpoint: Endpoint, subscriptions, protocol="3.1.1"):
        super().__init__(f"paho (MQTT {protocol})")
        self.identity = client_id("paho-sub")
        self.client = paho_client(endpoint, protocol, self.identity)
        self.connects = 0
        self.closing = False
        connected, subscribed = threading.Event(), {}
        acks = threading.Condition()

        def on_connect(client, userdata, flags, reason_code, properties):
            self.connects += 1
            if reason_code.is_failure or self.connects > 1:
                self._problem(f"CONNACK {reason_code} (connection {self.connects})")
            connected.set()

        def on_disconnect(client, userdata, flags, reason_code, properties):
            if not self.closing:
                self._problem(f"disconnected by the broker: {reason_code}")

        def on_subscribe(client, userdata, mid, reason_codes, properties):
            with acks:
                subscribed[mid] = [code.value for code in reason_codes]
                acks.notify_all()

        def on_message(client, userdata, message):
            self._add(Received(message.topic, message.payload.decode(), message.qos, bool(message.dup),
                               bool(message.retain)))

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        paho_connect(self.client, endpoint, connected)
        for topic_filter, qos in subscriptions:
            result, mid = self.client.subscribe(topic_filter, qos)
            assert result == mqtt.MQTT_ERR_SUCCESS, f"paho: subscribe {topic_filter}: {result}"
            with acks:
                if not acks.wait_for(lambda: mid in subscribed, TIMEOUT):
                    self.close()
                    raise TimeoutError(f"paho: no SUBACK for {topic_filter} from {endpoint}")
                self.granted.extend(subscribed[mid])

    def close(self):
        self.closing = True
        self.client.disconnect()
        self.client.loop_stop()


def paho_publish(endpoint: Endpoint, topic, messages, protocol="3.1.1", retain=False):
    """Publishes `messages` ((qos, payload) pairs) in order and waits until every one is sent
    (QoS 0) or acknowledged (QoS 1 and 2)."""
    connected = threading.Event()
    client = paho_client(endpoint, protocol, client_id("paho-pub"))
    client.on_connect = lambda *args: connected.set()
    paho_connect(client, endpoint, connected)
    try:
        sent = [client.publish(topic, payload, qos, retain=retain) for qos, payload in messages]
        deadline = time.monotonic() + TIMEOUT
        for info in sent:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError(f"paho: message {info.mid} not acknowledged by {endpoint} within {TIMEOUT} s")
    finally:
        client.disconnect()
        client.loop_stop()


def mosquitto_connection(endpoint: Endpoint, protocol):
    version = {"3.1": "mqttv31", "3.1.1": "mqttv311"}[protocol]
    if endpoint.transport == "unix":
        return ["--unix", str(endpoint.path), "-V", version]
    tls = ["--cafile", str(endpoint.ca)] if endpoint.transport == "tls" else []
    return ["-h", endpoint.host, "-p", str(endpoint.port), "-V", version, *tls]


class ProcessSubscriber(Subscriber):
    """A subscriber that is a process printing one line per event: `_line` reads each; `ready`
    is set once the process printed its granted QoS (every SUBACK arrived) or exited."""

    def __init__(self, stack, command, endpoint: Endpoint, stdin):
        super().__init__(stack)
        self.closing = False
        self.ready = threading.Event()
        self.process = subprocess.Popen([str(part) for part in command], stdin=stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)

        def read():
            for line in self.process.stdout:
                self._line(line.rstrip("\n"))
            status = self.process.wait()
            if not self.closing or status not in (0, -signal.SIGTERM):
                self._problem(f"{stack} exited with {status}")
            self.ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not self.ready.wait(TIMEOUT) or not self.granted:
            self.close()
            raise TimeoutError(f"{stack}: no SUBACK from {endpoint}: {self.problems}")

    def _line(self, line):
        raise NotImplementedError

    def close(self):
        self.closing = True
        self._stop()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _stop(self):
        raise NotImplementedError


class MosquittoSubscriber(ProcessSubscriber):
    """mosquitto_sub with debug output: the SUBACK, each PUBLISH's DUP flag, every CONNECT (a
    second one is a reconnect) and each message as a `-F` line with its QoS."""

    def __init__(self, endpoint: Endpoint, subscriptions, protocol="3.1.1"):
        (topic_filter, qos), = subscriptions
        self.connects, self.dup = 0, False
        # stdbuf: mosquitto_sub's debug lines are not flushed by itself when stdout is a pipe.
        command = ["stdbuf", "-oL", "mosquitto_sub", *mosquitto_connection(endpoint, protocol),
                   "-i", client_id("mosquitto-sub"), "-d", "-t", topic_filter, "-q", qos, "-F", "M %q %r %t %p"]
        super().__init__(f"mosquitto_sub (MQTT {protocol})", command, endpoint, subprocess.DEVNULL)

    def _line(self, line):
        if line.startswith("M "):
            _, qos, retain, topic, payload = line.split(" ", 4)
            self._add(Received(topic, payload, int(qos), self.dup, retain == "1"))
        elif "received PUBLISH (d" in line:
            self.dup = "(d1," in line
        elif "sending CONNECT" in line:
            self.connects += 1
            if self.connects > 1:
                self._problem("mosquitto_sub reconnected")
        elif line.startswith("Subscribed (mid:"):
            self.granted.extend(int(code) for code in line.split(":")[-1].split(","))
            self.ready.set()
        elif "error" in line.lower() or "refused" in line.lower():
            self._problem(f"mosquitto_sub: {line}")

    def _stop(self):
        self.process.terminate()


def mosquitto_publish(endpoint: Endpoint, topic, qos, payloads, protocol="3.1.1"):
    """One mosquitto_pub process publishing `payloads` at `qos`, one message per line (-l)."""
    command = ["mosquitto_pub", *mosquitto_connection(endpoint, protocol), "-i", client_id("mosquitto-pub"),
               "-t", topic, "-q", str(qos), "-l"]
    result = subprocess.run(command, input="".join(f"{payload}\n" for payload in payloads), capture_output=True,
                            text=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"mosquitto_pub -q {qos} to {endpoint} exited with {result.returncode}: {result.stderr}")


def build_c_client(directory: pathlib.Path) -> pathlib.Path:
    """Compiles clients/matrix_client.c against Debian's libpaho-mqtt-dev (with SSL)."""
    binary = directory / "matrix_client"
    result = subprocess.run(["gcc", "-Wall", "-Wextra", "-O1", "-o", binary, C_CLIENT_SOURCE,
                             "-lpaho-mqtt3cs"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"compiling {C_CLIENT_SOURCE.name} failed:\n{result.stderr}")
    return binary


def c_arguments(endpoint: Endpoint, protocol):
    if endpoint.transport == "unix":
        raise ValueError("the C client is not run over a Unix socket")
    scheme = "ssl" if endpoint.transport == "tls" else "tcp"
    return [f"{scheme}://{endpoint.host}:{endpoint.port}", {"3.1": "3", "3.1.1": "4"}[protocol],
            str(endpoint.ca) if endpoint.ca else "-"]


class CSubscriber(ProcessSubscriber):
    """The Paho C client (MQTTClient API) as a subscriber; see clients/matrix_client.c."""

    def __init__(self, binary, endpoint: Endpoint, subscriptions, protocol="3.1.1"):
        uri, version, ca = c_arguments(endpoint, protocol)
        pairs = [part for topic_filter, qos in subscriptions for part in (topic_filter, qos)]
        command = [binary, "sub", uri, client_id("c-sub"), version, ca, *pairs]
        super().__init__(f"Paho C (MQTT {protocol})", command, endpoint, subprocess.PIPE)

    def _line(self, line):
        words = line.split(" ", 5)
        if words[0] == "msg":
            self._add(Received(words[4], words[5], int(words[1]), words[2] == "1", words[3] == "1"))
        elif words[0] == "ready":
            self.granted.extend(int(code) for code in line.split()[1:])
            self.ready.set()
        else:
            self._problem(f"C client: {line}")

    def _stop(self):
        # Closing its standard input makes it disconnect and exit 0.
        self.process.stdin.close()


def c_publish(binary, endpoint: Endpoint, topic, prefix, qos_levels, count, protocol="3.1.1"):
    """One C client publishing `count` messages per QoS in `qos_levels`, the QoS taking turns."""
    uri, version, ca = c_arguments(endpoint, protocol)
    command = [binary, "pub", uri, client_id("c-pub"), version, ca, topic, str(count), prefix,
               ",".join(str(qos) for qos in qos_levels)]
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"C publisher to {endpoint} exited with {result.returncode}: {result.stderr}")


def run_concurrently(jobs):
    """Runs every job in its own thread and raises the first error once all are done."""
    errors = []

    def run(job):
        try:
            job()
        except Exception as error:  # reported below, with every other job finished
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError("a publisher did not finish")
    if errors:
        raise errors[0]


def counts(messages):
    """(topic, QoS) -> how many messages, the summary the oracle comparison uses."""
    return collections.Counter((message.topic, message.qos) for message in messages)
