"""Faults for tests/faults: a control plane of one test (its API server can be stopped and
started again on the same etcd, its etcd frozen), a proxy in front of an API server that
answers 429 and 500 for a while, identities with the chart's RBAC, and revisions of a
realistic shape.

The private control plane is a second `hack/cluster.sh` instance (its own directory and
free ports): stopping it never disturbs the shared one the other tests use.
"""

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML

import pullsync
from support import manifests as m
from support import wait
from support.cluster import ROOT, Cluster, token_kubeconfig
from support.git import free_port, make_ca
from support.operator import OperatorProcess

CLUSTER_SH = str(ROOT / "hack" / "cluster.sh")
LOCAL_GIT = ("--allow-insecure-http", "--allow-local-urls")  # the test git servers are HTTP on loopback
RELEASE, RELEASE_NAMESPACE = "faults", "pullsync-faults"  # the chart release (chart_identity) the operators run as


# --- identities -------------------------------------------------------------------------


def chart_account(cluster: Cluster, account: str, directory: Path) -> tuple[Path, str]:
    """A ServiceAccount `account` in the namespace of the release `faults` (installed by
    `support.helm.chart_identity`) bound to exactly the chart's roles, so that several
    operator processes have the chart's rights, each with an identity of its own in the
    audit log: a kubeconfig with its token, and its user name."""
    name = f"{RELEASE}-pullsync"
    if account != name:
        subject = {"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE}
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        objects: list[tuple[str, dict[str, Any]]] = [
            (f"/api/v1/namespaces/{RELEASE_NAMESPACE}/serviceaccounts/{account}",
             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}),
            (f"{rbac}/namespaces/{RELEASE_NAMESPACE}/rolebindings/{account}-leader-election",
             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
              "metadata": {"name": f"{account}-leader-election"}, "subjects": [subject],
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-leader-election"}}),
        ]  # fmt: skip
        for role in (name, f"{name}-base"):
            binding = f"{RELEASE_NAMESPACE}-{account}-{role.removeprefix(name).strip('-') or 'managed'}"
            objects.append(
                (f"{rbac}/clusterrolebindings/{binding}",
                 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": binding}, "subjects": [subject],
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}})
            )  # fmt: skip
        for path, body in objects:
            cluster.apply(body, path)
    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{account}"
    return token_kubeconfig(cluster, RELEASE_NAMESPACE, account, directory), user


def kubeconfig_token(kubeconfig: Path) -> str:
    """The bearer token of a kubeconfig written by `token_kubeconfig`."""
    return str(json.loads(kubeconfig.read_text())["users"][0]["user"]["token"])


# --- revisions of a realistic shape --------------------------------------------------------

KINDS = (("", "v1", "configmaps", "ConfigMap"), ("", "v1", "services", "Service"),
         ("apps", "v1", "deployments", "Deployment"))  # fmt: skip
FOLDERS = {"config": "_ConfigMap", "net": "_Service", "apps": "apps_Deployment"}


def revision(configmaps: int, services: int = 0, deployments: int = 0, *, data: str = "v1") -> dict[str, str]:
    """ConfigMaps, ClusterIP Services and Deployments with 2 replicas, one object per file."""
    files = {f"config/cm-{i:03}.yaml": m.configmap(f"cm-{i:03}", f"{data}-{i}") for i in range(configmaps)}
    files |= {f"net/svc-{i:03}.yaml": m.service(f"svc-{i:03}") for i in range(services)}
    files |= {f"apps/web-{i:03}.yaml": m.deployment(f"web-{i:03}", app=f"web-{i:03}") for i in range(deployments)}
    return files


def expected_ids(namespace: str, files: Iterable[str]) -> set[str]:
    """The inventory ids of the objects of `revision()` files (paths)."""
    return {f"{namespace}_{Path(path).stem}_{FOLDERS[path.split('/')[0]]}" for path in files}


def labelled(cluster: Cluster, namespace: str, sync: str = "app") -> dict[str, str]:
    """The objects of the revision's kinds in `namespace` that carry the owner labels of
    Sync `sync`: inventory id -> uid."""
    selector = f"pullsync.dev%2Fname%3D{sync},pullsync.dev%2Fnamespace%3D{namespace}"
    found = {}
    for group, version, plural, kind in KINDS:
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        listing = cluster.get(f"{base}/namespaces/{namespace}/{plural}?labelSelector={selector}") or {}
        for item in listing.get("items", []):
            found[f"{namespace}_{item['metadata']['name']}_{group}_{kind}"] = item["metadata"]["uid"]
    return found


def configmap_data(cluster: Cluster, namespace: str) -> dict[str, dict[str, str]]:
    """The data of the revision's ConfigMaps (`cm-*`) in `namespace`, by name."""
    listing = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps") or {}
    items = listing.get("items", [])
    return {i["metadata"]["name"]: i.get("data") or {} for i in items if i["metadata"]["name"].startswith("cm-")}


def git_configmap_data(files: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """The data of the ConfigMaps of `revision()` files (None: deleted), by name."""
    yaml = YAML(typ="safe")
    return {Path(p).stem: yaml.load(v)["data"] for p, v in files.items() if p.startswith("config/") and v is not None}


def hold(seconds: float, check: Callable[[], object], what: str) -> None:
    """Keep a fault in place for `seconds`, asserting `check()` all along (the fault's
    duration is the point here; this is not a wait for something to happen)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        assert check(), what
        time.sleep(min(0.25, left))


# --- operators -------------------------------------------------------------------------


class Operators:
    """The operator processes of one test; whatever happens, all are stopped at its end."""

    def __init__(self) -> None:
        self.processes: list[OperatorProcess] = []

    def start(self, kubeconfig: Path, *args: str) -> OperatorProcess:
        process = OperatorProcess(kubeconfig, *args)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.process.poll() is None:
                process.process.send_signal(signal.SIGCONT)  # a frozen one could not stop
            process.stop()


# --- a control plane of one test ----------------------------------------------------------


def _free_pair() -> int:
    """A free port p whose neighbour p + 1 (etcd's peer port) is free too."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free neighbouring ports")


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager of one test (hack/cluster.sh with
    its own CLUSTER_DIR and ports), pullsync's CRDs and the chart's identity installed.
    Its API server can be stopped and started again on the same etcd, its etcd frozen."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **os.environ,
            "CLUSTER_DIR": str(directory),
            "PULLSYNC_API_PORT": str(free_port()),
            "PULLSYNC_ETCD_PORT": str(_free_pair()),
        }
        self.cluster = Cluster(self._up())
        self.cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        for crd in ("gitrepositories.pullsync.dev", "syncs.pullsync.dev", "previews.pullsync.dev"):
            self.cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")

    def _up(self) -> Path:
        out = subprocess.run([CLUSTER_SH, "up"], env=self.env, capture_output=True, text=True, timeout=180, check=False)
        assert out.returncode == 0, f"hack/cluster.sh up failed: {out.stderr[-2000:]}"
        return Path(out.stdout.strip().splitlines()[-1])

    def pid(self, component: str) -> int:
        return int((self.directory / f"{component}.pid").read_text())

    def stop_apiserver(self) -> float:
        """Stop the API server as `hack/cluster.sh down` does: SIGTERM (it stops accepting
        connections at once), and SIGKILL if it still drains requests 3 s later. Returns
        when it is gone: the monotonic time of the SIGTERM, when the outage began."""
        pid = self.pid("kube-apiserver")
        began = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(AssertionError):
            wait.until(lambda: not _alive(pid), timeout=3, what="kube-apiserver to exit")
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        wait.until(lambda: not _alive(pid), timeout=10, what="kube-apiserver to exit")
        return began

    def start_apiserver(self) -> None:
        """Start the API server again on the same etcd (`up` starts only what stopped)."""
        self._up()

    def heal(self) -> None:
        """Undo whatever a test left: etcd thawed, the API server running."""
        self.thaw_etcd()
        if not _alive(self.pid("kube-apiserver")):
            self.start_apiserver()

    def freeze_etcd(self) -> None:
        os.kill(self.pid("etcd"), signal.SIGSTOP)

    def thaw_etcd(self) -> None:
        os.kill(self.pid("etcd"), signal.SIGCONT)

    def down(self) -> None:
        """Stop everything (a frozen etcd is thawed first, so that it can stop) and remove
        the directory."""
        with contextlib.suppress(OSError, ValueError):
            self.thaw_etcd()
        with contextlib.suppress(OSError, ValueError):
            os.kill(self.pid("kube-apiserver"), signal.SIGKILL)  # it would drain watches for a minute
        subprocess.run([CLUSTER_SH, "down"], env=self.env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclasses.dataclass
class Private:
    """A control plane of one test, a namespace in it and the chart's identity there."""

    plane: ControlPlane
    cluster: Cluster
    namespace: str
    kubeconfig: Path
    user: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


# --- a misbehaving proxy in front of the API server ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the proxy received: when (monotonic), what, and its answer."""

    at: float
    method: str
    target: str
    status: int  # the proxy's own refusal, or the API server's answer (0: no answer)
    refused: bool

    @property
    def watch(self) -> bool:
        query = urlsplit(self.target).query
        return any(p in ("watch=1", "watch=true") for p in query.split("&"))


class FlakyProxy:
    """HTTPS on loopback (a CA of its own) in front of an API server, one upstream
    connection per client connection, keep-alive and chunked streaming (watches) relayed
    as they come. `fail()` makes it answer requests itself, without forwarding them:
    429 with Retry-After and 500 in turn, for some seconds, for all requests or a
    fraction of them. Watch streams already open are left alone (a struggling API server
    keeps them too); new watch requests are refused like any other. Every request is
    recorded in `requests`."""

    def __init__(self, cluster: Cluster, directory: Path, *, seed: int = 1) -> None:
        self.ca, cert, key = make_ca(directory)
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(cert, key)
        target = urlsplit(cluster.server)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 443)
        self.context = cluster.context
        self.requests: list[Request] = []
        self.failing_until = 0.0
        self.fraction = 1.0
        self.statuses: tuple[int, ...] = (429, 500)
        self.retry_after = 1
        self._random = random.Random(seed)  # a test's dice, not a secret
        self._turn = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{listener.getsockname()[1]}"
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(listener, started), name="flaky-proxy", daemon=True)
        self._thread.start()
        assert started.wait(10), "the proxy did not start"

    # -- control (from the test's thread) --

    def fail(self, seconds: float, *, fraction: float = 1.0, statuses: tuple[int, ...] = (429, 500)) -> None:
        """From now on, for `seconds`, answer `fraction` of the requests with `statuses` in turn."""
        with self._lock:
            self.fraction, self.statuses = fraction, statuses
            self.failing_until = time.monotonic() + seconds

    def failing(self) -> bool:
        return time.monotonic() < self.failing_until

    def between(self, start: float, end: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if start <= r.at < end]

    def kubeconfig(self, token: str, path: Path) -> Path:
        """A kubeconfig that reaches the API server through this proxy, as `token`."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "proxy", "cluster": {"server": self.url, "certificate-authority": str(self.ca)}}
                    ],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "u"}}],
                    "current-context": "proxy",
                }
            )
        )
        return path

    def stop(self) -> None:
        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- the proxy (in its own thread and event loop) --

    def _run(self, listener: socket.socket, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, sock=listener, ssl=self.server_context)
        )
        started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    def _verdict(self) -> int | None:
        with self._lock:
            if time.monotonic() >= self.failing_until or self._random.random() >= self.fraction:
                return None
            self._turn += 1
            return self.statuses[self._turn % len(self.statuses)]

    def _record(self, method: str, target: str, status: int, refused: bool) -> None:
        with self._lock:
            self.requests.append(Request(time.monotonic(), method, target, status, refused))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        host, port = self.upstream
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    return
                method, target, headers = _parse_request(head)
                body = await _read_body(reader, headers)
                refusal = self._verdict()
                if refusal is not None:
                    self._record(method, target, refusal, True)
                    writer.write(self._refusal(refusal))
                    await writer.drain()
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection(host, port, ssl=self.context, server_hostname=host)
                up_reader, up_writer = upstream
                up_writer.write(_request_bytes(method, target, headers, body, f"{host}:{port}"))
                await up_writer.drain()
                response = await _read_head(up_reader)
                if response is None:
                    self._record(method, target, 0, False)
                    return
                self._record(method, target, int(response.split(b" ", 2)[1]), False)
                writer.write(response)
                keep = await _relay_body(up_reader, writer, method, response)
                if not keep or b"connection: close" in head.lower():
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError, asyncio.CancelledError):
            return  # a connection ends, or the proxy stops
        finally:
            self._connections.discard(task)
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.close()

    def _refusal(self, status: int) -> bytes:
        reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}.get(status, "InternalError")
        payload: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": f"a test fault: the proxy answers {status}",
            "reason": reason,
            "code": status,
        }
        extra = ""
        if status == 429:
            payload["details"] = {"retryAfterSeconds": self.retry_after}
            extra = f"Retry-After: {self.retry_after}\r\n"
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{extra}\r\n"
        )
        return head.encode() + data


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """A request's or response's head (through the empty line), None at a clean EOF."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise
        return None


def _parse_request(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(":")
            headers.append((key.strip(), value.strip()))
    return method, target, headers


def _header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    """A request's whole body (Content-Length or chunked)."""
    values = {k.lower(): v for k, v in headers}
    if "chunked" in values.get("transfer-encoding", "").lower():
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
            pass
        return body
    length = int(values.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


def _request_bytes(method: str, target: str, headers: list[tuple[str, str]], body: bytes, host: str) -> bytes:
    skip = {"host", "content-length", "transfer-encoding", "connection", "proxy-connection", "keep-alive"}
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in skip]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _relay_body(up: asyncio.StreamReader, down: asyncio.StreamWriter, method: str, head: bytes) -> bool:
    """Relay a response body as it comes (chunk by chunk: watches stream); whether the
    connection can carry another request."""
    status = int(head.split(b" ", 2)[1])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        await down.drain()
        return True
    if "chunked" in (_header(head, "transfer-encoding") or "").lower():
        while True:
            line = await up.readuntil(b"\r\n")
            size = int(line.split(b";")[0], 16)
            down.write(line)
            if size == 0:
                while (trailer := await up.readuntil(b"\r\n")) != b"\r\n":
                    down.write(trailer)
                down.write(b"\r\n")
                await down.drain()
                return True
            down.write(await up.readexactly(size + 2))
            await down.drain()
    length = _header(head, "content-length")
    if length is not None:
        down.write(await up.readexactly(int(length)))
        await down.drain()
        return True
    while chunk := await up.read(65536):  # no framing: the body ends with the connection
        down.write(chunk)
        await down.drain()
    return False


# --- every version of an object -----------------------------------------------------------


class Versions:
    """Every version of one object that a watch sees, collected in a thread until `stop()`
    (the watch is resumed from the last resourceVersion when it breaks, e.g. while the API
    server is away), so that a test can check each state a fault left behind."""

    def __init__(self, cluster: Cluster, collection: str, name: str) -> None:
        self.cluster = cluster
        self.collection = collection
        self.name = name
        self.seen: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"versions of {name}", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(15)
        return self.seen

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            query = f"?watch=1&fieldSelector=metadata.name%3D{self.name}&timeoutSeconds=2&allowWatchBookmarks=true"
            if version:
                query += f"&resourceVersion={version}"
            request = urllib.request.Request(self.cluster.server + self.collection + query)
            request.add_header("Authorization", f"Bearer {self.cluster.token}")
            try:
                with urllib.request.urlopen(request, context=self.cluster.context, timeout=10) as response:
                    for line in response:
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            version = ""  # 410 Gone: start from the current version
                            break
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self.seen.append(obj)
            except (OSError, ValueError):
                self._stop.wait(0.2)  # the API server is away: try again soon


def pullsync_tracebacks(log: str) -> list[str]:
    """The tracebacks in an operator's log that pass through pullsync's own code: bugs. Kopf's
    own (an API server that is starting answers 404 for a moment, Kopf stops, and the
    process starts it again) are not pullsync's."""
    package = str(Path(pullsync.__file__).parent)
    found = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = itertools.takewhile(lambda line: not re.match(r"\d{4}-\d\d-\d\d ", line), block.splitlines())
        frames = "\n".join(lines)
        if f'File "{package}/' in frames:
            found.append(frames)
    return found
