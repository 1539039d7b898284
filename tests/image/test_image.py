"""The operator image, run as OpenShift runs it (`make image-test`, after `make image`).

`podman run` is refused by this sandbox, so the image's filesystem is mounted (`podman
create` + `podman mount`), bound read-only, given writable tmpfs volumes where the chart
mounts them (/tmp, /var/cache/pullsync), and its entrypoint is run with `chroot
--userspec=<arbitrary UID>:0` and the image's own environment, against the local control
plane with the chart's identity and RBAC. Needs root (mount, chroot) and podman.
"""

import base64
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

import pullsync
from support import manifests as m
from support import wait
from support.cluster import ROOT, Cluster, condition, sync_path
from support.git import HttpGitServer, free_port
from support.helm import CHART, chart_identity, helm
from support.sync import create_gitrepo, create_sync

PODMAN = ["podman", "--storage-driver=vfs"]
IMAGE = os.environ.get("PULLSYNC_IMAGE") or f"localhost/pullsync:{pullsync.__version__}"
UID = 1000680000  # as OpenShift picks one: not root, not the image's 1001; group 0
SIZE_BOUND_MB = 450  # what we accept today: a Python base, the venv, kubectl and helm (~60 MB each)


def podman(*args: str) -> str:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def image() -> dict[str, Any]:
    """`podman image inspect` of the built image."""
    inspected: list[dict[str, Any]] = json.loads(podman("image", "inspect", IMAGE))
    return inspected[0]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The image's filesystem, read-only, with the chart's writable volumes on it."""
    container = podman("create", IMAGE)
    root = tmp_path_factory.mktemp("image") / "root"
    root.mkdir()
    mounted: list[Path] = []

    def mount(target: Path, *args: str) -> None:
        subprocess.run(["mount", *args, str(target)], check=True)
        mounted.append(target)

    try:
        mount(root, "--bind", podman("mount", container))
        subprocess.run(["mount", "-o", "remount,ro,bind", str(root)], check=True)
        mount(root / "tmp", "-t", "tmpfs", "-o", "size=256m,mode=1777", "tmpfs")  # emptyDir /tmp (HOME)
        mount(root / "var/cache/pullsync", "-t", "tmpfs", "-o", "size=1g,mode=0770,gid=0", "tmpfs")  # git caches
        mount(root / "dev", "--bind", "/dev")
        mount(root / "proc", "-t", "proc", "proc")
        yield root
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(target)], check=False)
        subprocess.run([*PODMAN, "umount", container], capture_output=True, check=False)
        subprocess.run([*PODMAN, "rm", "--force", container], capture_output=True, check=False)


def environment(image: dict[str, Any]) -> dict[str, str]:
    """The image's environment, and nothing of this process's."""
    return dict(item.split("=", 1) for item in image["Config"]["Env"])


def chrooted(rootfs: Path, image: dict[str, Any], *command: str) -> list[str]:
    return ["chroot", f"--userspec={UID}:0", str(rootfs), *command]


def run(rootfs: Path, image: dict[str, Any], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chrooted(rootfs, image, *command), env=environment(image), capture_output=True, text=True, check=False
    )


def test_the_image_is_what_users_check(image: dict[str, Any], rootfs: Path) -> None:
    labels = image["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "pullsync"
    assert labels["org.opencontainers.image.version"] == pullsync.__version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert image["Config"]["User"] == "1001:0"
    assert image["Config"]["Entrypoint"] == ["pullsync"]
    assert image["Config"]["Cmd"] == ["run"]  # the chart's args replace it
    version = run(rootfs, image, "pullsync", "--version")
    assert version.stdout.strip() == f"pullsync {pullsync.__version__}", version.stderr
    assert "v1.37.1" in run(rootfs, image, "kubectl", "version", "--client").stdout
    assert run(rootfs, image, "helm", "version", "--short").stdout.startswith("v3.17.3")

    size_mb = image["Size"] / 1e6
    print(f"image {IMAGE}: {size_mb:.0f} MB")
    assert size_mb < SIZE_BOUND_MB

    tools = ("gcc", "cc", "g++", "c++", "clang", "zig", "make", "pip", "pip3", "apt-get")
    present = [f"{d}/{t}" for d in ("usr/bin", "usr/local/bin", "opt/pullsync/bin") for t in tools]
    assert [p for p in present if (rootfs / p).exists() and not p.endswith("apt-get")] == []
    leftovers = [
        *(rootfs / "var/cache/apt/archives").glob("*.deb"),
        *[p for p in (rootfs / "var/lib/apt/lists").glob("*") if p.name not in ("lock", "partial")],
        *(rootfs / "opt").rglob("*.whl"),
        *[p for p in (rootfs / "root/.cache", rootfs / "tmp/pip", rootfs / "wheels", rootfs / "src") if p.exists()],
    ]
    assert leftovers == []


def test_the_root_filesystem_is_read_only_and_only_the_volumes_are_writable(
    image: dict[str, Any], rootfs: Path
) -> None:
    assert run(rootfs, image, "touch", "/opt/pullsync/x").returncode != 0
    assert run(rootfs, image, "touch", "/etc/x").returncode != 0
    for volume in ("/tmp", "/var/cache/pullsync"):
        made = run(rootfs, image, "mkdir", f"{volume}/probe")
        assert made.returncode == 0, made.stderr
    assert run(rootfs, image, "id", "-u").stdout.strip() == str(UID)
    assert run(rootfs, image, "id", "-g").stdout.strip() == "0"


def kubeconfig_inside(cluster: Cluster, source: Path, rootfs: Path) -> str:
    """The chart identity's kubeconfig, with its CA embedded, written into the image's /tmp."""
    config = json.loads(source.read_text())
    for entry in config["clusters"]:
        ca = Path(entry["cluster"].pop("certificate-authority")).read_bytes()
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(ca).decode()
    (rootfs / "tmp/kubeconfig").write_text(json.dumps(config))
    return "/tmp/kubeconfig"


def chart_args(namespace: str, ports: dict[str, int]) -> list[str]:
    """The container args of the chart's Deployment (release `image`, watching `namespace`,
    the test's plain-HTTP loopback git server allowed), as the kubelet would expand them,
    with the listen addresses moved to free loopback ports."""
    sets = [f"watchNamespaces={{{namespace}}}", "operator.allowInsecureHttp=true", "operator.allowLocalUrls=true"]
    rendered = helm("template", "image", str(CHART), "-n", "pullsync-image", *(a for s in sets for a in ("--set", s)))
    objects = [o for o in YAML(typ="safe").load_all(rendered.stdout) if o]
    (container,) = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    args = [a.replace("$(POD_NAMESPACE)", "pullsync-image") for a in container["args"]]
    for name, port in ports.items():
        args = [f"--{name}-addr=127.0.0.1:{port}" if a.startswith(f"--{name}-addr=") else a for a in args]
    return args


def status(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), ""
    except OSError:
        return 0, ""


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    with cluster.scratch_namespace("image") as name:
        yield name


def test_the_entrypoint_as_an_arbitrary_uid_syncs_the_demo_and_a_kustomization_and_stops_cleanly(
    cluster: Cluster, image: dict[str, Any], rootfs: Path, namespace: str, tmp_path: Path
) -> None:
    identity, _ = chart_identity(cluster, tmp_path, "image")
    git = HttpGitServer(tmp_path / "git")
    repo = git.repo("demo")
    app = {
        f"app/{p.name}": p.read_text().replace("demo-app", namespace)
        for p in (ROOT / "examples" / "app").glob("*.yaml")
        if p.name != "namespace.yaml"
    }
    overlay = {
        "kustomize/base/kustomization.yaml": "resources: [cm.yaml]\nconfigMapGenerator: [{name: e, literals: [a=1]}]\n",
        "kustomize/base/cm.yaml": m.configmap("settings"),
        "kustomize/staging/kustomization.yaml": "resources: [../base]\nnamePrefix: staging-\n",
    }
    commit = repo.commit({**app, **overlay}, "the demo app and an overlay")
    cluster.secret(namespace, "demo-git", {"username": git.username, "password": git.password})
    ports = {name: free_port() for name in ("health", "metrics", "webhook")}
    args = [
        *image["Config"]["Entrypoint"],
        *chart_args(namespace, ports),
        f"--kubeconfig={kubeconfig_inside(cluster, identity, rootfs)}",  # in place of the in-cluster config
    ]
    log = (tmp_path / "operator.log").open("w")
    operator = subprocess.Popen(chrooted(rootfs, image, *args), env=environment(image), stdout=log, stderr=log)
    try:
        health = ports["health"]
        wait.until(lambda: status(health, "/healthz")[0] == 200 or operator.poll() is not None, what="/healthz")
        assert operator.poll() is None, (tmp_path / "operator.log").read_text()
        wait.until(lambda: status(health, "/readyz")[0] == 200, timeout=60, what="/readyz")
        create_gitrepo(
            cluster, namespace, {"url": git.url("demo"), "interval": "1m", "secretRef": {"name": "demo-git"}}
        )
        create_sync(cluster, namespace, "demo", path="./app", targetNamespace=namespace)
        create_sync(cluster, namespace, "staging", path="./kustomize/staging")
        for name in ("demo", "staging"):

            def ready(name: str = name) -> dict[str, Any]:
                sync = cluster.get(sync_path(namespace, name)) or {}
                assert condition(sync).get("status") == "True", sync.get("status")
                assert sync["status"]["lastAppliedRevision"].endswith(commit)
                return sync

            wait.until(ready, timeout=60, what=f"Sync {name} Ready")
        assert cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web") is not None
        assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/staging-settings") is not None
        code, metrics = status(ports["metrics"], "/metrics")
        assert code == 200
        assert "pullsync_renders_total" in metrics
        assert "pullsync_objects_applied_total" in metrics
        for name in ("demo", "staging"):  # deleted while the operator runs: pruned, finalizer removed
            cluster.api("DELETE", sync_path(namespace, name))
        wait.until(lambda: not (cluster.get(f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/syncs") or {}).get(
            "items"
        ), timeout=30, what="the Syncs to be pruned and gone")  # fmt: skip
        assert cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web") is None
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            code = operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
            raise
        finally:
            git.stop()
    output = (tmp_path / "operator.log").read_text()
    assert code == 0, output
    assert "pullsync stopped" in output
    assert "Traceback" not in output
