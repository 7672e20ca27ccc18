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


class Schemas:
    """Validators for every payload kind, loaded from `crates/schema/schemas`."""

    def __init__(self, directory: pathlib.Path):
        self.validators = {
            leaf: jsonschema.Draft202012Validator(json.loads((directory / name).read_text()))
            for leaf, name in SCHEMA_BY_LEAF.items()
        }

    def problem(self, topic: str, payload: bytes):
        """None if the payload is valid for its topic, else a sentence naming the offending field."""
        leaf = topic.rsplit("/", 1)[-1]
        validator = self.validators.get(leaf)
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
