"""What counts as an object's content: everything but status and server-owned metadata.

The plan diffs normalised objects, and the live cache compares fingerprints, so that a
controller updating `status` (or the server bumping `resourceVersion`) is neither a
change to apply nor drift to correct.
"""

import hashlib
import json
from typing import Any

SERVER_OWNED_METADATA = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink")


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the fields the server owns (status, resourceVersion, ...)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    if "metadata" in out:
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k not in SERVER_OWNED_METADATA}
    return out


def of(obj: dict[str, Any]) -> str:
    """A hash of the object's content (`normalise`d, keys sorted)."""
    return hashlib.sha256(json.dumps(normalise(obj), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
