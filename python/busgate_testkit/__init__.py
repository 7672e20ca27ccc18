"""Test busgate board software from Python.

- `SimBoard` starts the broker and the gateways of a board file on a free port (mock buses).
- `Client` talks to a board over MQTT: `wait_for`, `command`, `state`, `sim` (fault injection),
  and validates every payload it receives against busgate's JSON Schemas.
- The pytest plugin (installed with the package) provides the `busgate_board` and `busgate`
  fixtures.
"""

from .board import SimBoard, repo_root
from .client import Client, SchemaViolation
from .schemas import Schemas

__all__ = ["Client", "SchemaViolation", "Schemas", "SimBoard", "repo_root"]
