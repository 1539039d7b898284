"""Reading kubeconfigs as kubectl does: merging, relative paths, every kind of user, exec
credential plugins (run, cached, run again when expired, failing clearly), the pod's
ServiceAccount, and what pullsync refuses rather than skips."""

import asyncio
import base64
import datetime
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from pullsync.kube import kubeconfig
from support.git import make_ca


def write(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        YAML(typ="safe").dump(config, f)
    return path


def config(user: dict[str, Any], cluster: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u", **context}}],
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_token_user_with_ca_data_and_namespace(tmp_path: Path) -> None:
    ca, _, _ = make_ca(tmp_path)
    path = write(
        tmp_path / "config",
        config({"token": "t0k"}, {"server": "https://10.0.0.1:6443", "certificate-authority-data": b64(ca.read_text())},
               namespace="team-a"),
    )  # fmt: skip
    connection = kubeconfig.load(str(path))
    assert (connection.server, connection.namespace) == ("https://10.0.0.1:6443", "team-a")
    assert connection.ca_data == ca.read_text()
    assert await connection.authorization() == "Bearer t0k"
    context = connection.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


async def test_kubeconfig_list_merges_first_wins_and_paths_are_relative_to_each_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "a" / "config", {"users": [{"name": "u", "user": {"tokenFile": "token"}}]})
    (tmp_path / "a" / "token").write_text("from-a\n")
    (tmp_path / "b").mkdir()
    ca, _, _ = make_ca(tmp_path / "b")
    second = write(
        tmp_path / "b" / "config",
        config({"token": "from-b"}, {"server": "https://h:1", "certificate-authority": "ca.crt"}),
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    connection = kubeconfig.load()
    assert connection.ca_file == str(ca)
    assert await connection.authorization() == "Bearer from-a"  # the user of the first file


async def test_client_certificate_from_data_and_from_files(tmp_path: Path) -> None:
    _, cert, key = make_ca(tmp_path)
    for user in (
        {"client-certificate-data": b64(cert.read_text()), "client-key-data": b64(key.read_text())},
        {"client-certificate": str(cert), "client-key": str(key)},
    ):
        connection = kubeconfig.load(str(write(tmp_path / "config", config(user))))
        assert isinstance(connection.ssl_context(), ssl.SSLContext)
        assert await connection.authorization() is None
    broken = config({"client-certificate": str(tmp_path / "gone.crt"), "client-key": str(key)})
    with pytest.raises(kubeconfig.ConfigError, match="cannot load the CA or client certificate"):
        kubeconfig.load(str(write(tmp_path / "config", broken))).ssl_context()


async def test_basic_auth_and_insecure(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        config({"username": "ann", "password": "pw"}, {"server": "https://h:1", "insecure-skip-tls-verify": True}),
    )
    connection = kubeconfig.load(str(path))
    assert await connection.authorization() == "Basic " + b64("ann:pw")
    assert connection.ssl_context().verify_mode == ssl.CERT_NONE


def plugin(tmp_path: Path, status: dict[str, Any], *, exit_code: int = 0) -> Path:
    """A credential plugin that records each run (its argv, env and request) and prints
    `status` as its ExecCredential."""
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, os, sys\n"
        f"with open({str(tmp_path / 'runs')!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'team': os.environ.get('TEAM'),\n"
        "        'info': json.loads(os.environ['KUBERNETES_EXEC_INFO'])}) + '\\n')\n"
        f"if {exit_code}:\n"
        "    print('token expired, run `cloud login`', file=sys.stderr)\n"
        f"    sys.exit({exit_code})\n"
        f"print(json.dumps({{'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
        f" 'status': {status!r}}}))\n"
    )
    return script


def runs(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "runs").read_text().splitlines() if (tmp_path / "runs").exists() else []
    return [json.loads(line) for line in lines]


def exec_config(script: Path, **extra: Any) -> dict[str, Any]:
    return config(
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(script), "--region", "eu"],
                "env": [{"name": "TEAM", "value": "platform"}],
                "installHint": "install cloud-cli",
                **extra,
            }
        },
        {"server": "https://h:1", "certificate-authority-data": b64("-----BEGIN CERTIFICATE-----\n")},
    )


async def test_exec_plugin_token_is_cached_until_it_expires(tmp_path: Path) -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    script = plugin(tmp_path, {"token": "exec-1", "expirationTimestamp": stamp})
    connection = kubeconfig.load(str(write(tmp_path / "config", exec_config(script, provideClusterInfo=True))))
    assert runs(tmp_path) == []  # loading runs nothing
    assert await connection.authorization() == "Bearer exec-1"
    assert await connection.authorization() == "Bearer exec-1"
    [run] = runs(tmp_path)
    assert run["argv"] == ["--region", "eu"]
    assert run["team"] == "platform"
    assert run["info"]["kind"] == "ExecCredential"
    assert run["info"]["spec"]["interactive"] is False
    assert run["info"]["spec"]["cluster"]["server"] == "https://h:1"
    expiration = connection.expiration()
    assert expiration is not None
    assert abs((expiration - later).total_seconds() - (-10)) < 2


async def test_exec_plugin_runs_again_once_expired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = plugin(tmp_path, {"token": "short", "expirationTimestamp": "2020-01-01T00:00:00Z"})
    connection = kubeconfig.load(str(write(tmp_path / "config", exec_config(script))))
    await asyncio.gather(*(connection.authorization() for _ in range(5)))  # at once: one run
    await connection.authorization()  # an expired token (a skewed clock) still serves a second
    assert len(runs(tmp_path)) == 1
    assert "cluster" not in runs(tmp_path)[0]["info"]["spec"]  # provideClusterInfo not set
    now = time.time()
    monkeypatch.setattr(kubeconfig.time, "time", lambda: now + 2)
    await connection.authorization()
    assert len(runs(tmp_path)) == 2


async def test_exec_plugin_without_expiry_runs_once(tmp_path: Path) -> None:
    script = plugin(tmp_path, {"token": "forever"})
    connection = kubeconfig.load(str(write(tmp_path / "config", exec_config(script))))
    for _ in range(3):
        assert await connection.authorization() == "Bearer forever"
    assert len(runs(tmp_path)) == 1
    assert connection.expiration() is None


async def test_exec_plugin_failures_say_what(tmp_path: Path) -> None:
    failing = kubeconfig.load(str(write(tmp_path / "config", exec_config(plugin(tmp_path, {}, exit_code=3)))))
    for _ in range(2):  # the second, right after, is the same answer without running it again
        with pytest.raises(kubeconfig.ConfigError, match=r"failed \(exit 3\): token expired, run `cloud login`"):
            await failing.authorization()
    assert len(runs(tmp_path)) == 1
    certificates = plugin(tmp_path, {"clientCertificateData": "x", "clientKeyData": "y"})
    with pytest.raises(kubeconfig.ConfigError, match="client certificates, which pullsync does not support"):
        await kubeconfig.load(str(write(tmp_path / "config", exec_config(certificates)))).authorization()
    missing = config({"exec": {"command": "no-such-plugin", "installHint": "brew install no-such-plugin"}})
    with pytest.raises(kubeconfig.ConfigError, match=r"cannot run .*no-such-plugin.*\(brew install no-such-plugin\)"):
        await kubeconfig.load(str(write(tmp_path / "config", missing))).authorization()


async def test_token_file_is_read_again_when_due(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("one\n")
    connection = kubeconfig.load(str(write(tmp_path / "config", config({"tokenFile": "token"}))))
    assert await connection.authorization() == "Bearer one"
    (tmp_path / "token").write_text("two\n")
    assert await connection.authorization() == "Bearer one"  # not yet due
    monkeypatch.setattr(kubeconfig, "TOKEN_FILE_TTL", 0.0)
    connection._token = None  # as if a minute had passed
    assert await connection.authorization() == "Bearer two"


async def test_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("pullsync-system")
    connection = kubeconfig.in_cluster(tmp_path)
    assert (connection.server, connection.namespace) == ("https://[fd00::1]:443", "pullsync-system")
    assert connection.ca_file == str(tmp_path / "ca.crt")
    assert await connection.authorization() == "Bearer sa-token"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(kubeconfig.ConfigError, match="not in a pod"):
        kubeconfig.in_cluster(tmp_path)


@pytest.mark.parametrize(
    ("user", "cluster", "message"),
    [
        ({"auth-provider": {"name": "oidc"}}, {}, "auth-provider"),
        ({"token": "t", "as": "admin"}, {}, "impersonation"),
        ({"token": "t"}, {"proxy-url": "http://proxy:3128"}, "proxy-url"),
        ({"token": "t"}, {"server": ""}, "no server"),
        ({"token": "t", "client-key-data": "not base64!"}, {}, "client-key-data is not base64"),
        (
            {"token": "t"},
            {"insecure-skip-tls-verify": True, "certificate-authority-data": b64("x")},
            "a CA and insecure",
        ),
        ({"token": "t"}, {"certificate-authority": "ca.crt", "certificate-authority-data": b64("x")}, "keep one"),
        ({"client-key": "k.pem", "client-key-data": b64("x")}, {}, "both client-key and client-key-data"),
        ({"token": "t", "username": "ann", "password": "pw"}, {}, "more than one way"),
    ],
)
def test_what_cannot_be_honoured_is_an_error(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any], message: str
) -> None:
    path = write(tmp_path / "config", config(user, {"server": "https://h:1", **cluster}))
    with pytest.raises(kubeconfig.ConfigError, match=message):
        kubeconfig.load(str(path))


def test_missing_pieces_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(kubeconfig.ConfigError, match="does not exist"):
        kubeconfig.load(str(tmp_path / "nope"))
    no_context = {**config({"token": "t"}), "current-context": ""}
    with pytest.raises(kubeconfig.ConfigError, match="no current context"):
        kubeconfig.load(str(write(tmp_path / "config", no_context)))
    wrong = {**config({"token": "t"}), "current-context": "prod"}
    with pytest.raises(kubeconfig.ConfigError, match="no context named 'prod'"):
        kubeconfig.load(str(write(tmp_path / "config", wrong)))
    (tmp_path / "bad").write_text("clusters: [unclosed\n")
    with pytest.raises(kubeconfig.ConfigError, match="cannot read the kubeconfig"):
        kubeconfig.load(str(tmp_path / "bad"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(kubeconfig.ConfigError, match="not in a pod"):
        kubeconfig.load()


async def test_a_list_whose_first_file_is_missing_and_wrapped_base64(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, _, _ = make_ca(tmp_path)
    wrapped = "\n".join(b64(ca.read_text())[i : i + 76] for i in range(0, len(b64(ca.read_text())), 76))
    path = write(
        tmp_path / "config", config({"token": "t"}, {"server": "https://h:1", "certificate-authority-data": wrapped})
    )
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'gone'}:{path}")
    for given in (None, f"{tmp_path / 'gone'}:{path}"):  # $KUBECONFIG, or the list passed on (`--kubeconfig`)
        assert kubeconfig.load(given).ca_data == ca.read_text()


async def test_a_token_file_or_a_certificate_is_used_instead_of_exec(tmp_path: Path) -> None:
    script = plugin(tmp_path, {"token": "from-exec"})
    (tmp_path / "token").write_text("from-file")
    with_file = exec_config(script)
    with_file["users"][0]["user"]["tokenFile"] = "token"
    connection = kubeconfig.load(str(write(tmp_path / "config", with_file)))
    assert await connection.authorization() == "Bearer from-file"
    assert runs(tmp_path) == []


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    user = {"token": "s3cret-token", "client-key-data": b64("s3cret-key")}
    connection = kubeconfig.load(str(write(tmp_path / "config", config(user))))
    assert "s3cret" not in repr(connection)
