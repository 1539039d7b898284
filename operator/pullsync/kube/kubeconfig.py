"""Where the API server is and who pullsync is to it, found the way kubectl finds them.

The kubeconfig given, else $KUBECONFIG (a list of files, merged as kubectl merges them:
the first file to name an entry or a current context wins), else ~/.kube/config; else,
in a pod, its ServiceAccount. The current context's user may authenticate with a token,
a token file, a client certificate, a username and password, or an exec credential
plugin (`client.authentication.k8s.io`, as EKS, GKE and AKS use); a token that expires,
or a token file that the kubelet rotates, is read again when due. What pullsync cannot
honour (an auth-provider, impersonation, a proxy) is an error, never silently skipped.

Own code rather than kubernetes_asyncio's loader: importing any part of that package
loads its whole generated client, about 37 MB in every replica (docs/performance.md).
"""

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import json
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_TTL = 60.0  # a token file is read again after this long (the kubelet rotates it)
EXEC_TIMEOUT = 60.0
EXEC_SLACK = datetime.timedelta(seconds=10)  # an exec token this close to its expiry is fetched again
FAILURE_HOLD = 5.0  # a plugin or token file that failed is not tried again for this long
UNSUPPORTED = {
    "auth-provider": "an auth-provider (removed from kubectl too): use an exec credential plugin instead",
    "as": "impersonation (`as`)",
    "as-groups": "impersonation (`as-groups`)",
    "as-uid": "impersonation (`as-uid`)",
}


class ConfigError(Exception):
    """The kubeconfig (or the pod's ServiceAccount) cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class Exec:
    """An exec credential plugin: a command that prints an ExecCredential with a token."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1"
    install_hint: str = ""
    cluster_info: Mapping[str, Any] | None = None  # given to the plugin when provideClusterInfo


@dataclasses.dataclass
class Connection:
    """One API server and one identity: TLS settings and the credentials to present."""

    server: str
    namespace: str | None = None  # the context's (or the pod's) namespace
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: str | None = None  # PEM
    key_data: str | None = dataclasses.field(default=None, repr=False)  # PEM
    token: str | None = dataclasses.field(default=None, repr=False)
    token_file: str | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    exec: Exec | None = dataclasses.field(default=None, repr=False)  # its env may hold secrets
    _token: tuple[str, float] | None = dataclasses.field(default=None, repr=False)  # (value, valid until)
    _failed: tuple[ConfigError, float] | None = dataclasses.field(default=None, repr=False)  # (error, when)
    _lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock, repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        """TLS as the kubeconfig says: its CA (else the system's), its client certificate,
        no verification of the server only with insecure-skip-tls-verify."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
            if self.cert_file or self.cert_data:
                with _pem_file(self.cert_file, self.cert_data) as cert, _pem_file(self.key_file, self.key_data) as key:
                    context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load the CA or client certificate of {self.server}: {e}") from e
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def authorization(self) -> str | None:
        """The `Authorization` header to send, fetching a token again when it is due: a
        token, else basic auth, else a token file, else the exec plugin (as client-go)."""
        if self.token:
            return f"Bearer {self.token}"
        if self.username is not None:
            pair = f"{self.username}:{self.password or ''}".encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        if self.token_file is None and self.exec is None:
            return None
        plugin = self.exec
        async with self._lock:  # many requests at once: one of them runs the plugin
            if self._token is None or time.time() >= self._token[1]:
                if self._failed is not None and time.time() < self._failed[1] + FAILURE_HOLD:
                    raise self._failed[0]
                try:
                    self._token = await run_exec(plugin) if plugin else _read_token(self.token_file or "")
                except ConfigError as e:
                    self._failed = (e, time.time())
                    raise
                self._failed = None
        return f"Bearer {self._token[0]}"

    def forget(self) -> bool:
        """Drop the token read from a file or a plugin, which the server refused (401);
        False when there is none to fetch again (a static token, a certificate)."""
        dropped, self._token = self._token is not None, None
        return dropped

    def expiration(self) -> datetime.datetime | None:
        """When the token last fetched by an exec plugin expires (None: it does not)."""
        if self.exec is None or self._token is None or self._token[1] == float("inf"):
            return None
        return datetime.datetime.fromtimestamp(self._token[1], datetime.UTC)


def load(kubeconfig: str | None = None) -> Connection:
    """The connection of `kubeconfig` (or $KUBECONFIG, or ~/.kube/config), else of the
    pod's ServiceAccount. Nothing runs yet: an exec plugin runs at the first request."""
    value = kubeconfig or os.environ.get("KUBECONFIG")
    if value:  # one file must exist; of a list, those missing are skipped (as kubectl)
        files = [Path(p).expanduser() for p in value.split(os.pathsep) if p]
        found = [f for f in files if f.is_file()]
        if not found:
            raise ConfigError(f"the kubeconfig {value} does not exist")
        return from_files(found)
    default = Path.home() / ".kube" / "config"
    if default.is_file():
        return from_files([default])
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    raise ConfigError("no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a pod")


def in_cluster(root: Path = SERVICE_ACCOUNT) -> Connection:
    """The pod's ServiceAccount: the API server from the environment, its token file
    (read again every minute: the kubelet rotates it), CA and namespace."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    if not (root / "token").is_file():
        raise ConfigError(f"the pod has no ServiceAccount token at {root / 'token'}")
    host = f"[{host}]" if ":" in host else host
    namespace = root / "namespace"
    return Connection(
        server=f"https://{host}:{port}",
        namespace=namespace.read_text().strip() if namespace.is_file() else None,
        ca_file=str(root / "ca.crt"),
        token_file=str(root / "token"),
    )


def from_files(files: list[Path]) -> Connection:
    """The current context of `files` merged: for each cluster, user and context name,
    and for the current context, the first file that has it wins."""
    merged: dict[str, dict[str, Any]] = {"clusters": {}, "users": {}, "contexts": {}}
    current = ""
    for path in files:
        config = _read(path)
        current = current or str(config.get("current-context") or "")
        for section, entries in merged.items():
            for entry in config.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") is not None:
                    entries.setdefault(str(entry["name"]), {"base": path.parent, **entry})
    where = ", ".join(str(f) for f in files) or "an empty $KUBECONFIG"
    if not current:
        raise ConfigError(f"{where}: no current context (`kubectl config use-context NAME`)")
    context = _entry(merged, "contexts", current, "context", where)
    cluster = _entry(merged, "clusters", str(context.get("cluster") or ""), "cluster", where)
    user = _entry(merged, "users", str(context.get("user") or ""), "user", where) if context.get("user") else {}
    return _connection(context, cluster, user, where)


def _read(path: Path) -> dict[str, Any]:
    try:
        config = YAML(typ="safe").load(path.read_text())
    except (OSError, YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the kubeconfig {path}: {e}") from e
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"the kubeconfig {path} is not a mapping")
    return config


def _entry(merged: dict[str, dict[str, Any]], section: str, name: str, field: str, where: str) -> dict[str, Any]:
    entry = merged[section].get(name)
    if entry is None or not isinstance(entry.get(field), dict):
        raise ConfigError(f"{where}: no {field} named {name!r}")
    return {"base": entry["base"], **entry[field]}


def _connection(context: dict[str, Any], cluster: dict[str, Any], user: dict[str, Any], where: str) -> Connection:
    for key, what in UNSUPPORTED.items():
        if user.get(key):
            raise ConfigError(f"{where}: the current context's user uses {what}, which pullsync does not support")
    for key in ("proxy-url", "tls-server-name"):
        if cluster.get(key):
            raise ConfigError(f"{where}: the cluster sets {key}, which pullsync does not support")
    if not cluster.get("server"):
        raise ConfigError(f"{where}: the cluster has no server")
    for entry, key in ((cluster, "certificate-authority"), (user, "client-certificate"), (user, "client-key")):
        if entry.get(key) and entry.get(f"{key}-data"):
            raise ConfigError(f"{where}: both {key} and {key}-data are set: keep one")
    if cluster.get("insecure-skip-tls-verify") and (
        cluster.get("certificate-authority") or cluster.get("certificate-authority-data")
    ):
        raise ConfigError(f"{where}: the cluster sets a CA and insecure-skip-tls-verify: keep one (as kubectl)")
    if user.get("token") and user.get("username"):
        raise ConfigError(f"{where}: the user has a token and a username: more than one way to authenticate")
    plugin = user.get("exec")
    if user.get("tokenFile") or user.get("client-certificate") or user.get("client-certificate-data"):
        plugin = None  # as client-go: a token file or a certificate, when set, is used instead
    return Connection(
        server=str(cluster["server"]),
        namespace=context.get("namespace") or None,
        ca_file=_path(cluster, "certificate-authority"),
        ca_data=_data(cluster, "certificate-authority-data", where),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=_path(user, "client-certificate"),
        key_file=_path(user, "client-key"),
        cert_data=_data(user, "client-certificate-data", where),
        key_data=_data(user, "client-key-data", where),
        token=user.get("token") or None,
        token_file=_path(user, "tokenFile"),
        username=user.get("username") or None,
        password=user.get("password") or None,
        exec=_exec(plugin, cluster, user["base"], where) if isinstance(plugin, dict) else None,
    )


def _path(entry: dict[str, Any], key: str) -> str | None:
    """A file named in the kubeconfig, relative to the kubeconfig's own directory."""
    value = entry.get(key)
    return str(entry["base"] / Path(str(value)).expanduser()) if value else None


def _data(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if not value:
        return None
    try:  # wrapped lines are fine (`base64` without -w0), as in Go
        return base64.b64decode("".join(str(value).split()), validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: {key} is not base64 of a PEM") from e


def _exec(plugin: dict[str, Any], cluster: dict[str, Any], base: Path, where: str) -> Exec:
    command = str(plugin.get("command") or "")
    if not command:
        raise ConfigError("the exec credential plugin has no command")
    if os.sep in command and not os.path.isabs(command):
        command = str(base / command)  # as kubectl: a relative path is the kubeconfig's
    info = None
    if plugin.get("provideClusterInfo"):  # the fields of ExecCredential's spec.cluster
        ca = str(cluster.get("certificate-authority-data") or "")
        if not ca and (ca_file := _path(cluster, "certificate-authority")):
            try:
                ca = base64.b64encode(Path(ca_file).read_bytes()).decode()
            except OSError as e:
                raise ConfigError(f"{where}: cannot read {ca_file}: {e.strerror or e}") from e
        info = {
            "server": str(cluster.get("server") or ""),
            "certificate-authority-data": ca,
            "insecure-skip-tls-verify": bool(cluster.get("insecure-skip-tls-verify")),
        }
        config = next(
            (
                e.get("extension")
                for e in cluster.get("extensions") or []
                if isinstance(e, dict) and e.get("name") == "client.authentication.k8s.io/exec"
            ),
            None,
        )
        if config is not None:
            info["config"] = config
    return Exec(
        command=command,
        args=tuple(str(a) for a in plugin.get("args") or []),
        env=tuple(
            (str(e["name"]), str(e.get("value", "")))
            for e in plugin.get("env") or []
            if isinstance(e, dict) and "name" in e
        ),
        api_version=str(plugin.get("apiVersion") or "client.authentication.k8s.io/v1"),
        install_hint=str(plugin.get("installHint") or ""),
        cluster_info=info,
    )


async def run_exec(plugin: Exec) -> tuple[str, float]:
    """Run the plugin; its token and until when to use it (its expiry less a margin)."""
    spec: dict[str, Any] = {"interactive": False}
    if plugin.cluster_info is not None:
        spec["cluster"] = dict(plugin.cluster_info)
    request = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(request)}
    name = os.path.basename(plugin.command)
    try:
        process = await asyncio.create_subprocess_exec(
            plugin.command,
            *plugin.args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint else ""
        raise ConfigError(f"cannot run the exec credential plugin {name}: {e.strerror or e}{hint}") from e
    try:
        out, err = await asyncio.wait_for(process.communicate(), EXEC_TIMEOUT)
    except TimeoutError as e:
        raise ConfigError(f"the exec credential plugin {name} gave no answer in {EXEC_TIMEOUT:.0f} s") from e
    finally:  # timed out, or the caller cancelled: the plugin does not outlive the request
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ConfigError(f"the exec credential plugin {name} failed (exit {process.returncode}): {said[0][:300]}")
    return _credential(out, name)


def _credential(out: bytes, name: str) -> tuple[str, float]:
    try:
        credential = json.loads(out)
    except ValueError as e:
        raise ConfigError(f"the exec credential plugin {name} printed no ExecCredential") from e
    status = credential.get("status") if isinstance(credential, dict) else None
    if not isinstance(status, dict) or credential.get("kind") != "ExecCredential":
        raise ConfigError(f"the exec credential plugin {name} printed no ExecCredential")
    token = status.get("token")
    if not token:
        certificates = status.get("clientCertificateData")
        what = "client certificates, which pullsync does not support" if certificates else "no token"
        raise ConfigError(f"the exec credential plugin {name} gave {what}")
    expiry = status.get("expirationTimestamp")
    if not expiry:
        return str(token), float("inf")
    try:
        expires = datetime.datetime.fromisoformat(str(expiry).replace("Z", "+00:00")).timestamp()
    except ValueError as e:
        raise ConfigError(f"the exec credential plugin {name} gave an unreadable expirationTimestamp") from e
    # Used until just before it expires; a token that lives shorter than the margin (or a
    # clock ahead of the plugin's) still serves for a second, not for no request at all.
    return str(token), max(expires - EXEC_SLACK.total_seconds(), time.time() + 1.0)


def _read_token(path: str) -> tuple[str, float]:
    """A token file's token, to read again in a minute (the kubelet rotates it)."""
    try:
        token = Path(path).read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the token file {path}: {e.strerror or e}") from e
    return token, time.time() + TOKEN_FILE_TTL


@contextlib.contextmanager
def _pem_file(path: str | None, data: str | None) -> Any:
    """A file name for `ssl`, which loads certificates and keys only from files: `path`
    itself, or `data` in a private temporary file removed once loaded."""
    if path or not data:
        yield path
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:  # created mode 0600
        f.write(data)
        f.flush()
        yield f.name
