"""Faults for tests/faults: a private control plane whose API server can be stopped and
whose etcd can be paused, and a proxy in front of the API server that answers 429 and
500 for a while.

The private control plane is a second `hack/cluster.sh` instance (its own directory and
ports): stopping it never disturbs the shared one the other tests use.
"""

import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from support import manifests as m
from support import wait
from support.cluster import ROOT, Cluster
from support.git import free_port

LOCAL_GIT = ("--allow-insecure-http", "--allow-local-urls")  # the test git servers are HTTP on loopback


class PrivateCluster:
    """etcd + kube-apiserver + kube-controller-manager of this test only, with pullsync's CRDs."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="pullsync-fault-cluster-"))
        self.env = {
            **os.environ,
            "CLUSTER_DIR": str(self.directory),
            "PULLSYNC_API_PORT": str(free_port()),
            "PULLSYNC_ETCD_PORT": str(free_port()),
        }
        self.cluster = Cluster(self._up())
        self.cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        for crd in ("gitrepositories.pullsync.dev", "syncs.pullsync.dev"):
            self.cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")

    def _up(self) -> Path:
        out = subprocess.run(
            [str(ROOT / "hack" / "cluster.sh"), "up"], env=self.env, check=True, capture_output=True, text=True
        )
        return Path(out.stdout.strip().splitlines()[-1])

    def pid(self, component: str) -> int:
        return int((self.directory / f"{component}.pid").read_text())

    def stop_apiserver(self) -> None:
        pid = self.pid("kube-apiserver")
        os.kill(pid, signal.SIGKILL)  # as a crash, or a node lost: no graceful goodbye to clients
        wait.until(lambda: not alive(pid), what="kube-apiserver to exit")

    def start_apiserver(self) -> None:
        """Start the API server again on the same etcd (hack/cluster.sh starts what stopped)."""
        self._up()

    def signal_etcd(self, sig: int) -> None:
        os.kill(self.pid("etcd"), sig)

    def down(self) -> None:
        self.signal_etcd(signal.SIGCONT)  # a paused etcd would not stop
        subprocess.run([str(ROOT / "hack" / "cluster.sh"), "down"], env=self.env, check=False, capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


class FlakyProxy:
    """Plain HTTP on loopback in front of the API server (TLS to it). `fail()` makes it answer
    429 (with Retry-After) and 500 in turn, without forwarding, for some seconds; watches
    are passed through as streams. It counts the requests it answered itself."""

    def __init__(self, cluster: Cluster) -> None:
        target = urlsplit(cluster.server)
        self.host, self.port = target.hostname or "127.0.0.1", target.port or 443
        self.context = cluster.context
        self.failing_until = 0.0
        self.refused: list[str] = []  # "METHOD path" of each request answered with a refusal
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if time.monotonic() < proxy.failing_until and "watch=" not in self.path:
                    proxy.refused.append(f"{self.command} {self.path}")
                    self.refuse(429 if len(proxy.refused) % 2 else 500)
                    return
                self.forward(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

            def refuse(self, status: int) -> None:
                payload = json.dumps(
                    {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                     "message": "the proxy says no (a test fault)"}
                ).encode()  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(payload)

            def forward(self, body: bytes | None) -> None:
                upstream = http.client.HTTPSConnection(proxy.host, proxy.port, context=proxy.context, timeout=330)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while chunk := response.read1(65536):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                finally:
                    upstream.close()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, seconds: float) -> None:
        self.failing_until = time.monotonic() + seconds

    def kubeconfig(self, token: str, directory: Path) -> Path:
        """A kubeconfig that reaches the API server through this proxy, as `token`."""
        path = directory / "proxied.kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": self.url}}],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        return path

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def alive(pid: int) -> bool:
    """Running (a zombie, exited but not reaped by its adoptive parent, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def token_of(kubeconfig: Path) -> str:
    return str(json.loads(kubeconfig.read_text())["users"][0]["user"]["token"])


KINDS = (
    ("", "v1", "configmaps", "ConfigMap"),
    ("", "v1", "services", "Service"),
    ("apps", "v1", "deployments", "Deployment"),
)


def revision(configmaps: int, services: int = 0, deployments: int = 0, *, data: str = "v1") -> dict[str, str]:
    """The files of a revision of realistic shape: ConfigMaps, ClusterIP Services and
    Deployments with 2 replicas, one object per file."""
    files = {f"config/cm-{i:03}.yaml": m.configmap(f"cm-{i:03}", f"{data}-{i}") for i in range(configmaps)}
    files |= {f"net/svc-{i:02}.yaml": m.service(f"svc-{i:02}") for i in range(services)}
    files |= {f"apps/web-{i:02}.yaml": m.deployment(f"web-{i:02}", app=f"web-{i:02}") for i in range(deployments)}
    return files


def expected_ids(namespace: str, files: dict[str, str]) -> set[str]:
    """The inventory ids of `revision()` files."""
    kinds = {"config": "_ConfigMap", "net": "_Service", "apps": "apps_Deployment"}
    return {f"{namespace}_{Path(path).stem}_{kinds[path.split('/')[0]]}" for path in files}


def labelled(cluster: Cluster, namespace: str, sync: str = "app") -> set[str]:
    """The ids of the objects in `namespace` that carry the owner labels of Sync `sync`."""
    found = set()
    for group, version, plural, kind in KINDS:
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        listing = cluster.get(f"{base}/namespaces/{namespace}/{plural}?labelSelector=pullsync.dev%2Fname%3D{sync}")
        found |= {f"{namespace}_{o['metadata']['name']}_{group}_{kind}" for o in (listing or {}).get("items", [])}
    return found
