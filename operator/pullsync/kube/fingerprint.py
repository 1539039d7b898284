"""What counts as an object's content: everything but status and server-owned metadata.

The plan diffs normalised objects, and the live cache compares fingerprints, so that a
controller updating `status` (or the server bumping `resourceVersion`) is neither a
change to apply nor drift to correct.

A fingerprint covers only the fields pullsync owns when the object says which those are
(its `managedFields` entry of server-side apply by field manager `pullsync`): what other
managers add or change in fields pullsync does not set (the token controller's `secrets`
of a ServiceAccount, the Deployment controller's revision annotation, an HPA's replicas)
is not pullsync's to correct, and an apply would leave it as it is. A field pullsync set
that someone else changes leaves pullsync's set (an update takes ownership) or changes
value in it: either way the fingerprint changes, and that is drift. Objects without such
an entry are fingerprinted whole.
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pullsync import api

SERVER_OWNED_METADATA = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink")


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the fields the server owns (status, resourceVersion, ...)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    if "metadata" in out:
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k not in SERVER_OWNED_METADATA}
    return out


def owned(obj: Mapping[str, Any], manager: str = api.FIELD_MANAGER) -> dict[str, Any] | None:
    """The field set (`fieldsV1`) that `manager` owns by server-side apply, merged over the
    API versions it applied with; None when the object names none."""
    found: dict[str, Any] | None = None
    for entry in (obj.get("metadata") or {}).get("managedFields") or ():
        if entry.get("manager") != manager or entry.get("operation") != "Apply" or entry.get("subresource"):
            continue
        fields = entry.get("fieldsV1")
        if isinstance(fields, dict):
            found = fields if found is None else _union(found, fields)
    return found


def _union(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _union(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def project(value: Any, fields: Mapping[str, Any]) -> Any:
    """`value` reduced to the field set `fields` (structured-merge-diff's fieldsV1: `f:name`
    for a field, `k:{...}` for a list item by its keys, `v:...` for a set member, `i:N` by
    index, `.` for the node itself). A leaf of the set keeps its whole value."""
    if not fields or (set(fields) == {"."}):
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in fields.items():
            if key.startswith("f:") and key[2:] in value:
                out[key[2:]] = project(value[key[2:]], sub)
        return out
    if isinstance(value, list):
        items: list[Any] = []
        for key, sub in fields.items():
            kind, _, selector = key.partition(":")
            if kind == "k":
                keys = json.loads(selector)
                match = [i for i in value if isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items())]
                items += [project(i, sub) for i in match[:1]] or [{"missing": keys}]
            elif kind == "v":
                member = json.loads(selector)
                items.append(member if member in value else {"missing": member})
            elif kind == "i" and selector.isdigit():
                index = int(selector)
                items.append(project(value[index], sub) if index < len(value) else {"missing": index})
        return items
    return value  # a scalar where the set expects a structure: its value is what changed


def of(obj: dict[str, Any]) -> str:
    """A hash of the object's content: the fields pullsync owns (see the module), else the
    whole object `normalise`d; keys sorted."""
    fields = owned(obj)
    if fields is None:
        content: Any = normalise(obj)
    else:
        content = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "owned": project(obj, fields)}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
