"""helm (from the venv) and the rendered chart."""

import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from support.cluster import ROOT, Cluster, token_kubeconfig

HELM = str(Path(sys.executable).parent / "helm")
CHART = ROOT / "charts" / "pullsync"


def helm(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([HELM, *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr}")
    return result


def render(*sets: str) -> list[dict[str, Any]]:
    """`helm template` with `--set` values, as a list of objects."""
    args = [a for s in sets for a in ("--set", s)]
    out = helm("template", "pullsync", str(CHART), "--namespace", "pullsync-system", *args).stdout
    return [d for d in YAML(typ="safe").load_all(out) if d]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, [o["kind"] for o in objects]
    return found[0]


def chart_identity(cluster: Cluster, directory: Path, release: str) -> tuple[Path, str]:
    """Install the chart as `release` with no replicas; a kubeconfig with its ServiceAccount's
    token, and that identity's user name: an operator run with it has the RBAC users get."""
    namespace = f"pullsync-{release}"
    helm("upgrade", "--install", release, str(CHART), "-n", namespace, "--create-namespace", "--set", "replicas=0",
         env=cluster.env())  # fmt: skip
    account = f"{release}-pullsync"
    return token_kubeconfig(cluster, namespace, account, directory), f"system:serviceaccount:{namespace}:{account}"
