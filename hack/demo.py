"""`make demo`: pullsync against the local control plane and a local git server.

  python hack/demo.py up     start the git server and the operator, apply the examples,
                             wait until they are Ready, print what to look at (default)
  python hack/demo.py down   stop what `up` started (by pid)

The git server (smart HTTP with basic auth, the same one the tests use) serves
`examples/` committed as `demo.git`; two Syncs follow it: `demo` applies the plain
manifests of `app/`, `web-staging` the kustomize overlay `kustomize/overlays/staging`.
The operator runs as `pullsync run` in the background with its log in
.cluster/demo/operator.log, as the ServiceAccount and with the RBAC that the chart gives it
(the chart installed as release `demo` with no replicas), not as the cluster's admin.
The local control plane has no kubelet: a fake one (tests/support/kubelet.py) binds the
demo's Pods to a fake Node and reports them running, so that Deployments roll out and
health means something. No container really runs.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import wait  # noqa: E402
from support.cluster import Cluster  # noqa: E402
from support.git import HttpGitServer, Repo  # noqa: E402
from support.helm import chart_identity  # noqa: E402
from support.kubelet import FakeKubelet  # noqa: E402

STATE = ROOT / ".cluster" / "demo"
BIN = Path(sys.executable).parent
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
GIT_PORT, GIT_USER, GIT_PASSWORD = 18080, "demo", "demo-password"
DEMO_NAMESPACES = ("demo-app", "web-staging")  # where the examples' Pods are run by the fake kubelet
ENV = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "KUBECACHEDIR": str(STATE / "kubecache")}


def kubectl(*args: str, input: str | None = None) -> str:
    result = subprocess.run(
        [str(BIN / "kubectl"), *args], input=input, capture_output=True, text=True, env=ENV, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def running(name: str) -> bool:
    pid_file = STATE / f"{name}.pid"
    return pid_file.exists() and alive(int(pid_file.read_text()))


def spawn(name: str, args: list[str]) -> None:
    if running(name):
        return
    log = (STATE / f"{name}.log").open("a")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
    (STATE / f"{name}.pid").write_text(str(process.pid))


def serve_git() -> None:
    """Run the demo git server in the foreground until SIGTERM."""
    server = HttpGitServer(STATE / "git", GIT_USER, GIT_PASSWORD, port=GIT_PORT)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.thread.join()


def serve_kubelet() -> None:
    """Run the fake kubelet for the demo's namespaces in the foreground until SIGTERM."""
    kubelet = FakeKubelet(Cluster(KUBECONFIG), namespaces=DEMO_NAMESPACES).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    kubelet.stop()


def up() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    crds = ("crd/gitrepositories.pullsync.dev", "crd/syncs.pullsync.dev", "crd/previews.pullsync.dev")
    kubectl("wait", "--for=condition=Established", *crds)

    (STATE / "git").mkdir(exist_ok=True)
    repo = Repo(STATE / "git" / "demo.git")  # the examples as they are now, force-pushed
    for example in ("app", "kustomize", "helm"):
        shutil.copytree(ROOT / "examples" / example, repo.work / example)
    commit = repo.commit({}, "demo: the examples")
    spawn("git-server", [sys.executable, __file__, "serve-git"])
    spawn("kubelet", [sys.executable, __file__, "serve-kubelet"])
    # The operator runs as the chart makes it (its ServiceAccount, its RBAC), not as admin.
    kubeconfig, _ = chart_identity(Cluster(KUBECONFIG), STATE, "demo")
    spawn(
        "operator",
        [
            str(BIN / "pullsync"),
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",  # where the demo's GitRepository and Sync live; what they apply may go anywhere
            "pullsync-demo",
            "--health-addr",
            "127.0.0.1:18081",
            "--metrics-addr",
            "127.0.0.1:18082",
            "--webhook-addr",
            "127.0.0.1:19292",
            "--cache-dir",
            str(STATE / "cache"),
            "--allow-insecure-http",  # the demo git server is plain HTTP on loopback
            "--allow-local-urls",
        ],
    )

    kubectl("apply", "-f", "-", input=kubectl("create", "namespace", "pullsync-demo", "--dry-run=client", "-o", "yaml"))
    secret = kubectl(
        "create",
        "secret",
        "generic",
        "demo-git",
        "-n",
        "pullsync-demo",
        f"--from-literal=username={GIT_USER}",
        f"--from-literal=password={GIT_PASSWORD}",
        "--dry-run=client",
        "-o",
        "yaml",
    )
    kubectl("apply", "-f", "-", input=secret)
    examples = ("gitrepository.yaml", "sync.yaml", "sync-kustomize.yaml")
    kubectl("apply", *(a for e in examples for a in ("-f", str(ROOT / "examples" / e))))

    def ready(kind: str) -> bool:
        """Every object of `kind` Ready at the commit just pushed (a second `make demo` too)."""
        items = json.loads(kubectl("get", kind, "-n", "pullsync-demo", "-o", "json"))["items"]
        conditions = [c for obj in items for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        statuses = [obj.get("status") or {} for obj in items]
        revisions = [str(s.get("lastAppliedRevision") or (s.get("artifact") or {}).get("revision")) for s in statuses]
        return (
            len(conditions) == len(items)
            and all(c["status"] == "True" for c in conditions)
            and all(commit in revision for revision in revisions)
        )

    started = time.monotonic()
    try:
        wait.until(lambda: ready("gitrepositories") and ready("syncs"), timeout=90, what="the demo to be Ready")
    except AssertionError:
        print(kubectl("get", "gitrepo,sync", "-A"))
        raise SystemExit(f"the demo did not become Ready; see {STATE / 'operator.log'}") from None
    print(f"pullsync demo is up (Ready after {time.monotonic() - started:.1f}s)")
    print("(no kubelet runs here: a fake one binds the Pods to a fake Node and reports them running)\n")
    print(kubectl("get", "gitrepo,sync", "-A"))
    print(kubectl("get", "all,configmap", "-n", "demo-app", "-l", "pullsync.dev/name=demo"))
    print(kubectl("get", "deploy,svc,configmap", "-n", "web-staging", "-l", "pullsync.dev/name=web-staging"))
    print(
        f"Try:\n  export KUBECONFIG={KUBECONFIG}\n  kubectl get sync -A\n"
        f"  kubectl scale deploy/web -n demo-app --replicas=5   # drift: reverted at once (the watch sees it)\n"
        f"  git clone http://{GIT_USER}:{GIT_PASSWORD}@127.0.0.1:{GIT_PORT}/demo.git   # edit app/, commit, push:\n"
        f"      # applied within 10 s (the GitRepository's interval); `make demo` again resets it to examples/\n"
        f"  kubectl get sync demo -n pullsync-demo -o jsonpath='{{.status.health}}'   # pods run by a fake kubelet\n"
        f"  .venv/bin/pullsync build examples/kustomize/overlays/staging   # what web-staging applies\n"
        f"  tail -f {STATE / 'operator.log'}\n  make demo-down\n"
    )


def stop(name: str) -> None:
    pid_file = STATE / f"{name}.pid"
    if running(name):
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        wait.until(lambda: not alive(pid), timeout=30, what=f"{name} to stop")
    pid_file.unlink(missing_ok=True)


def down() -> None:
    stop("operator")
    stop("kubelet")
    stop("git-server")
    print("demo stopped (the control plane keeps running: make cluster-down)")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    {"up": up, "down": down, "serve-git": serve_git, "serve-kubelet": serve_kubelet}[command]()
