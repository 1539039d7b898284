"""pullsync reads manifests as kubectl does: `pullsync build -o json` against
`kubectl create --dry-run=client -o json` on the same files, rule by rule
(support/yamlcases) and on real manifests from upstream projects (tests/corpus)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.cluster import ROOT, Cluster
from support.manifests import ALIASED_SERVICE
from support.yamlcases import CASES, configmap

CORPUS = ROOT / "tests" / "corpus"
PULLSYNC = str(Path(sys.executable).parent / "pullsync")
OWNER_LABELS = ("pullsync.dev/name", "pullsync.dev/namespace")


def pullsync_build(directory: Path, output: str) -> str:
    out = subprocess.run([PULLSYNC, "build", str(directory), "-o", output], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def build(directory: Path) -> list[dict[str, Any]]:
    """`pullsync build -o json`, owner labels taken off."""
    items: list[dict[str, Any]] = json.loads(pullsync_build(directory, "json"))["items"]
    for obj in items:
        labels = obj["metadata"]["labels"]
        assert [labels.pop(k) for k in OWNER_LABELS] == ["build", "default"]
        if not labels:
            del obj["metadata"]["labels"]
    return items


def kubectl_reads(cluster: Cluster, directory: Path) -> list[dict[str, Any]]:
    """What kubectl reads from every file of `directory`. `kubectl create --dry-run=client`
    needs the server's mapping of each kind; for kinds this 1.20 server does not serve
    (autoscaling/v2, policy/v1...) `kubectl annotate --local` reads with the same decoder
    and no server, and its marker annotation is taken off again."""
    out = cluster.kubectl(
        "create", "--dry-run=client", "--validate=false", "-o", "json", "-f", str(directory), check=False
    )
    marker = None
    if out.returncode != 0 and "resource mapping not found" in out.stderr:
        marker = "pullsync.test/read"
        out = cluster.kubectl("annotate", "--local", "-o", "json", "-f", str(directory), f"{marker}=x")
    assert out.returncode == 0, out.stderr
    items: list[dict[str, Any]] = []
    decoder, text, position = json.JSONDecoder(parse_int=go_number), out.stdout, 0
    while text[position:].strip():  # one JSON object per object read (or a List)
        value, position = decoder.raw_decode(text, len(text) - len(text[position:].lstrip()))
        items += value["items"] if value.get("kind") == "List" else [value]
    for obj in items:
        meta = obj["metadata"]
        if meta.get("labels", {}) is None:  # pullsync puts its owner labels there
            del meta["labels"]
        if marker is not None:
            meta["annotations"].pop(marker)
            if not meta["annotations"]:
                del meta["annotations"]
    return items


def same_as_kubectl(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """Object for object equal, but for the namespace `default` that `kubectl create` puts
    on namespaced objects that set none (pullsync sets the Sync's targetNamespace when it
    applies, not when it reads)."""
    assert len(ours) == len(theirs) > 0
    for mine, kubectls in zip(ours, theirs, strict=True):
        if "namespace" not in mine["metadata"] and kubectls["metadata"].get("namespace") == "default":
            del kubectls["metadata"]["namespace"]
        assert mine == kubectls, f"{mine['kind']}/{mine['metadata']['name']}"


def go_number(text: str) -> int | float:
    """A JSON integer as Kubernetes reads it: past int64 it is a float (Go prints such
    floats as long integers, e.g. 9223372036854776000)."""
    number = int(text)
    return number if -(2**63) <= number < 2**63 else float(text)


@pytest.mark.parametrize("case", list(CASES))
def test_each_yaml_rule_matches_kubectl(cluster: Cluster, tmp_path: Path, case: str) -> None:
    snippet, expected = CASES[case]
    (tmp_path / "cm.yaml").write_text(configmap("rules", snippet))
    (theirs,) = kubectl_reads(cluster, tmp_path)
    assert theirs["values"] == expected
    same_as_kubectl(build(tmp_path), [theirs])


QUIRKS = {
    "aliases.yaml": ALIASED_SERVICE,
    "dates.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: release}\ndata:\n  released: 2024-01-15\n",
    "helm-template.yaml": (
        "---\n# Source: chart/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: empty\n"
        "  annotations:\n  labels:\ndata:\n  a: 'b'\n"
    ),
    "pod.yaml": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  automountServiceAccountToken: no\n"
        "  containers: [{name: c, image: nginx:1.19, ports: [{containerPort: 80, protocol: TCP}]}]\n"
        "  volumes:\n  - {name: a, secret: {secretName: s, defaultMode: 0400}}\n"
        "  - {name: b, configMap: {name: c, defaultMode: 0644}}\n"
    ),
    "z.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"path": "a\\/b"}}\n',
}


def test_the_quirks_of_real_repositories_match_kubectl(cluster: Cluster, tmp_path: Path) -> None:
    for name, text in QUIRKS.items():
        (tmp_path / name).write_text(text)
    theirs = kubectl_reads(cluster, tmp_path)
    same_as_kubectl(build(tmp_path), theirs)
    assert theirs[0]["spec"]["selector"] == {"app": "web"}
    assert theirs[3]["spec"]["volumes"][0]["secret"]["defaultMode"] == 256


@pytest.mark.parametrize("project", sorted(p.name for p in CORPUS.iterdir() if p.is_dir()))
def test_upstream_manifests_read_as_kubectl_reads_them(cluster: Cluster, tmp_path: Path, project: str) -> None:
    copy = tmp_path / project
    shutil.copytree(CORPUS / project, copy)
    same_as_kubectl(build(copy), kubectl_reads(cluster, copy))
    printed = tmp_path / "built.yaml"  # and what `pullsync build` prints, kubectl reads back the same
    printed.write_text(pullsync_build(copy, "yaml"))
    same_as_kubectl(json.loads(pullsync_build(copy, "json"))["items"], kubectl_reads(cluster, printed))
