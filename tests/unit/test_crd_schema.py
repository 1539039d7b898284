"""The CRDs document themselves: every field of every schema has a description, so that
`kubectl explain` answers for each (api.md). The root's `metadata` is the exception: the
API server refuses anything there but the name. And what the schema refuses, the operator
refuses too (for objects stored before the schema did)."""

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from pullsync import api

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


def url_pattern() -> str:
    definition = YAML(typ="safe").load((ROOT / "crds" / "gitrepositories.pullsync.dev.yaml").read_text())
    spec = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return str(spec["properties"]["url"]["pattern"])


@pytest.mark.parametrize(
    "url", ["https://user:pw@host/r.git", "http://git:s3cret@127.0.0.1:8080/app.git", "ssh://git:pw@host/x.git"]
)
def test_a_password_in_a_git_url_is_refused_by_the_schema_and_by_the_operator(url: str) -> None:
    assert not re.fullmatch(url_pattern(), url)  # fullmatch: RE2's $ takes no trailing newline
    with pytest.raises(ValueError, match=r"spec\.url: holds a password") as refused:
        api.GitRepositorySpec.parse({"url": url})
    assert "pw" not in str(refused.value).replace("password", "")
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git",
        "https://token@github.com/org/repo.git",
        "http://127.0.0.1:8080/repo.git",
        "ssh://git@host:2222/org/repo.git",
        "git@github.com:org/repo.git",
    ],
)
def test_a_git_url_with_a_user_name_only_is_accepted(url: str) -> None:
    assert re.fullmatch(url_pattern(), url)
    assert api.GitRepositorySpec.parse({"url": url}).url == url


@pytest.mark.parametrize("url", ["https://ho\nst/r.git", "https://host/r\n.git", "git@host:org/r\nforged log line"])
def test_a_git_url_with_a_line_break_is_refused_by_the_schema(url: str) -> None:
    assert not re.fullmatch(url_pattern(), url)
