"""busgate's checked-in JSON Schemas, chosen by the last topic level."""

import json
import pathlib

import jsonschema

# The last topic level names the payload (see docs/topics.md).
SCHEMA_BY_LEAF = {
    "state": "reading.json",
    "set": "command.json",
    "sim": "command.json",
    "reply": "reply.json",
    "availability": "availability.json",
    "status": "status.json",
    "health": "health.json",
}

# CAN buses (`busgate/{board}/can/{bus}/{name}/state`): the state of a DBC message, a raw
# frame (`id-...`) or the bus itself (`bus`).
CAN_STATE_SCHEMAS = {"frame": "can-frame.json", "bus": "can-bus.json", "message": "can-message.json"}


def schema_name(topic: str):
    """The schema file of a topic's payload, or None when it has none."""
    levels = topic.split("/")
    leaf = levels[-1]
    if len(levels) == 6 and levels[2] == "can" and leaf == "state":
        name = levels[4]
        kind = "bus" if name == "bus" else "frame" if name.startswith("id-") else "message"
        return CAN_STATE_SCHEMAS[kind]
    return SCHEMA_BY_LEAF.get(leaf)


class Schemas:
    """Validators for every payload kind, loaded from `crates/schema/schemas`."""

    def __init__(self, directory: pathlib.Path):
        names = set(SCHEMA_BY_LEAF.values()) | set(CAN_STATE_SCHEMAS.values())
        self.validators = {
            name: jsonschema.Draft202012Validator(json.loads((directory / name).read_text())) for name in names
        }

    def problem(self, topic: str, payload: bytes):
        """None if the payload is valid for its topic, else a sentence naming the offending field."""
        validator = self.validators.get(schema_name(topic))
        if validator is None:
            return None
        try:
            value = json.loads(payload)
        except ValueError as error:
            return f"{topic}: payload is not JSON ({error})"
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        field = "/".join(str(part) for part in error.absolute_path) or "(payload)"
        return f"{topic}: field {field}: {error.message}"
