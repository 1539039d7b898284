"""The CRDs document themselves: every field of every schema has a description, so that
`kubectl explain` answers for each (api.md). The root's `metadata` is the exception: the
API server refuses anything there but the name."""

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))


def undocumented(schema: dict[str, Any], path: str) -> list[str]:
    """The paths under `schema` of fields without a description."""
    missing = []
    for name, field in (schema.get("properties") or {}).items():
        if not field.get("description"):
            missing.append(f"{path}.{name}")
        missing += undocumented(field, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        missing += undocumented(schema["items"], f"{path}[]")
    return missing


@pytest.mark.parametrize("crd", CRDS, ids=[c.name for c in CRDS])
def test_every_field_has_a_description(crd: Path) -> None:
    definition = YAML(typ="safe").load(crd.read_text())
    for version in definition["spec"]["versions"]:
        kind = definition["spec"]["names"]["kind"]
        assert undocumented(version["schema"]["openAPIV3Schema"], kind) == [f"{kind}.metadata"]
