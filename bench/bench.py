"""`make bench`: pullsync against `kubectl apply --server-side` on the local control plane.

Prints a table, writes bench/results.json and rewrites the section "Latest `make bench`
run" of docs/performance.md (machine, method, figures, goals). Phases (see docs/performance.md; `--only`
picks some: render, initial, latency, many, fleet, monorepo), each with an operator
process of its own (so its peak RSS is that phase's):
  render: (no cluster) a commit of 50 kustomize overlays of one 20-object base, each
     rendered by the operator's own code (kubectl kustomize in the sandbox);
  initial: initial sync of N objects (ConfigMaps, ClusterIP Services, Deployments of 2
     replicas, across 10 namespaces): GitRepository + Sync created -> Ready, versus
     kubectl apply -R of the same files (warm discovery cache, namespaces created
     beforehand for both, each started once the controller-manager is done with the
     other's objects) as the admin, and again as the operator's ServiceAccount (the same
     identity, so the same authentication and RBAC cost per request), and the floor of
     any client that dry-runs all before it writes (bench/floor.py, a bare client, same
     shapes); at 1000 also the no-op reconcile (API requests, wall time) and drift
     correction (`scale` of a managed Deployment until reverted); peak RSS at the largest N;
  latency: commit-to-applied latency for a one-object change, with a webhook and with polling;
  many: 100 GitRepositories + 100 Syncs;
  fleet: 1000 GitRepository + Sync pairs of Flux's benchmark shape, created at once: all
     Ready, peak RSS, every health Current, then the API requests of one steady interval;
  monorepo: 1000 Syncs over one GitRepository (a path each): all Ready, peak RSS,
     fetches; then a commit to one app: fetches, renders, writes.
Usage: python bench/bench.py [--only fleet,monorepo] [--sizes 100,1000,3000] [--commits 20]
       [--fleet 1000] [--monorepo 1000]
"""

import argparse
import hashlib
import hmac
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import floor  # noqa: E402

from support import manifests as m  # noqa: E402
from support import wait  # noqa: E402
from support.cluster import AuditLog, Cluster, condition, gitrepo_path, sync_path  # noqa: E402
from support.git import HttpGitServer  # noqa: E402
from support.helm import chart_identity  # noqa: E402
from support.operator import OperatorProcess, post_webhook  # noqa: E402
from support.sync import create_gitrepo, create_sync, request  # noqa: E402

NAMESPACES = 10
API = "pullsync.dev/v1alpha1"


def objects(n: int, prefix: str) -> dict[str, str]:
    """n objects, a third each ConfigMaps, ClusterIP Services and Deployments of 2 replicas
    (no kubelet runs here: their Pods stay Pending, as on a cluster short of nodes), over
    10 namespaces."""
    files: dict[str, str] = {}
    for i in range(n):
        ns = f"{prefix}-{i % NAMESPACES}"
        kind = i % 3
        if kind == 0:
            doc = m.configmap(f"cm-{i}", str(i), namespace=ns)
        elif kind == 1:
            doc = m.service(f"svc-{i}").replace("{app: web}", f"{{app: web-{i + 1}}}")
        else:
            doc = m.deployment(f"web-{i}", app=f"web-{i}", replicas=2)
        if kind:
            doc = doc.replace("metadata:\n  name:", f"metadata:\n  namespace: {ns}\n  name:", 1)
        files[f"{ns}/{i:05d}.yaml"] = doc
    return files


def render_overlays(overlays: int = 50, per_base: int = 20) -> dict[str, Any]:
    """Render every overlay of a repository of `overlays` overlays over one base of
    `per_base` objects (Deployments of 2 replicas, ClusterIP Services, ConfigMaps,
    ServiceAccounts), one by one as the operator does for one Sync each."""
    import pygit2

    from pullsync.render import build, trees
    from support.git import Repo

    files = {"base/kustomization.yaml": "resources:\n" + "".join(f"- app-{i}.yaml\n" for i in range(per_base // 4))}
    for i in range(per_base // 4):
        name = f"app-{i}"
        service = m.service(name).replace("{app: web}", f"{{app: {name}}}")
        account = f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n"
        docs = [m.deployment(name, app=name), service, m.configmap(f"{name}-settings", name), account]
        files[f"base/{name}.yaml"] = "---\n".join(docs)
    for o in range(overlays):
        files[f"overlays/env-{o}/kustomization.yaml"] = (
            f"resources: [../../base]\nnamespace: env-{o}\nnamePrefix: env-{o}-\n"
            f"images: [{{name: nginx, newTag: '1.27.{o}'}}]\nlabels: [{{pairs: {{env: env-{o}}}}}]\n"
            f"configMapGenerator: [{{name: env, literals: [ENV=env-{o}]}}]\n"
        )
    repo = Repo(Path(tempfile.mkdtemp(prefix="bench-render-")) / "overlays.git")
    commit = repo.commit(files)
    tree = trees.GitTree(pygit2.Repository(str(repo.bare)), commit)
    seconds = []
    count = 0
    for o in range(overlays):
        started = time.perf_counter()
        docs = build.render(tree, f"overlays/env-{o}", sync_name=f"env-{o}", sync_namespace="bench")
        seconds.append(time.perf_counter() - started)
        count += len(docs)
    shutil.rmtree(repo.bare.parent)
    shutil.rmtree(repo.work)
    return {
        "overlays": overlays,
        "objects": count,
        "total_s": round(sum(seconds), 2),
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def fleet_app(app: str) -> dict[str, str]:
    """The 4 objects of one app in Flux's benchmark shape (a ClusterIP Service, not headless)."""
    service = m.service(app).replace("{app: web}", f"{{app: {app}}}")
    account = f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {app}\n"
    ingress = f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {app}
spec:
  rules:
  - host: {app}.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: {app}, port: {{number: 80}}}}}}
"""
    deployment = m.deployment(app, app=app, replicas=0)
    return {"deploy.yaml": deployment, "sa.yaml": account, "svc.yaml": service, "ingress.yaml": ingress}


def requests_between(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """API requests by verb from one /metrics sample to a later one."""
    return {
        k.split('verb="')[1].split('"')[0]: int(after[k] - before.get(k, 0))
        for k in after
        if k.startswith("pullsync_api_requests_total{") and after[k] != before.get(k, 0)
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, cluster: Cluster, git: HttpGitServer) -> None:
        self.cluster = cluster
        self.git = git
        self.operator: OperatorProcess | None = None
        self.run = secrets.token_hex(2)  # namespaces are unique per run: old ones may still terminate
        # The operator runs as a pod would: the chart's ServiceAccount and RBAC (a release with no replicas).
        self.identity, self.user = chart_identity(cluster, Path(tempfile.mkdtemp(prefix="bench-identity-")), "bench")
        self.token = json.loads(self.identity.read_text())["users"][0]["user"]["token"]

    def start_operator(self, scope: str) -> OperatorProcess:
        """A fresh `pullsync run` (so that its peak RSS is this phase's) for namespaces `scope`."""
        self.stop_operator()
        self.operator = OperatorProcess(
            self.identity,
            "--namespace", scope, "--allow-insecure-http", "--allow-local-urls", "--max-objects", "10000",
        )  # fmt: skip
        self.operator.wait_ready()
        return self.operator

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None

    @property
    def op(self) -> OperatorProcess:
        assert self.operator is not None, "no operator started"
        return self.operator

    def namespace(self, name: str) -> str:
        self.cluster.kubectl("create", "namespace", name)
        return name

    def source(self, home: str, files: dict[str, str], **spec: Any) -> tuple[str, Any]:
        name = f"b{secrets.token_hex(4)}"
        repo = self.git.repo(name)
        repo.commit(files, "bench")
        self.cluster.secret(home, "git", {"username": self.git.username, "password": self.git.password})
        return name, repo

    def applied(self, namespace: str, name: str = "app") -> str:
        sync = self.cluster.get(sync_path(namespace, name)) or {}
        ready = condition(sync)
        return str((sync.get("status") or {}).get("lastAppliedRevision", "")) if ready.get("status") == "True" else ""

    def initial_sync(self, n: int) -> dict[str, Any]:
        prefix, kprefix, sprefix, fprefix = (f"{who}-{self.run}-{n}" for who in ("bench", "kbench", "sbench", "fbench"))
        for i in range(NAMESPACES):
            for p in (prefix, kprefix, sprefix, fprefix):
                self.namespace(f"{p}-{i}")
        home = f"{prefix}-0"
        repo_name, repo = self.source(home, objects(n, prefix))
        commit = repo.commit({}, "bench head")
        started = time.monotonic()
        create_gitrepo(
            self.cluster, home, {"url": self.git.url(repo_name), "interval": "1h", "secretRef": {"name": "git"}}
        )
        create_sync(self.cluster, home, prune=False, interval="5s" if n == 1000 else "1h", timeout="10m")
        wait.until(lambda: self.applied(home).endswith(commit), timeout=600, interval=0.02, what=f"{n} objects")
        pullsync = time.monotonic() - started
        self.settle(prefix, n)  # kubectl gets as quiet a server as pullsync had

        kubectl = self.kubectl_apply(kprefix, n)
        as_operator = self.kubectl_apply(sprefix, n, "--kubeconfig", str(self.identity))
        bare = floor.measure(self.cluster, objects(n, fprefix), token=self.token)
        self.settle(fprefix, n)
        return {
            "objects": n,
            "pullsync_s": round(pullsync, 2),
            "kubectl_s": round(kubectl, 2),
            "ratio": round(pullsync / kubectl, 2),
            "kubectl_as_operator": {"seconds": round(as_operator, 2), "ratio": round(pullsync / as_operator, 2)},
            "floor": {**bare, "ratio": round(bare["total_s"] / kubectl, 2)},
        }

    def kubectl_apply(self, prefix: str, n: int, *identity: str) -> float:
        """Seconds of `kubectl apply --server-side -R` of `objects(n, prefix)` (as the admin,
        or as `identity`'s kubeconfig), once the controller-manager is done with them."""
        directory = Path(tempfile.mkdtemp(prefix="kbench-"))
        for path, content in objects(n, prefix).items():
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_text(content)
        started = time.monotonic()
        self.cluster.kubectl(*identity, "apply", "--server-side", "--field-manager=bench", "-R", "-f", str(directory))
        seconds = time.monotonic() - started
        shutil.rmtree(directory)
        self.settle(prefix, n)
        return seconds

    def settle(self, prefix: str, n: int) -> None:
        """Wait until the controller-manager is done with the objects of `objects(n,
        prefix)` (2 Pods per Deployment, Endpoints per Service): its backlog (at 20
        requests/s) would otherwise slow whatever is measured next."""

        def made(path: str) -> int:
            items = (self.cluster.get(path) or {}).get("items") or []
            return sum(1 for i in items if i["metadata"]["namespace"].startswith(f"{prefix}-"))

        wait.until(lambda: made("/api/v1/pods") >= 2 * (n // 3), timeout=600, interval=1, what=f"Pods of {prefix}")
        wait.until(lambda: made("/api/v1/endpoints") >= (n + 1) // 3, timeout=600, interval=1, what="Endpoints")

    def no_op(self, n: int) -> dict[str, Any]:
        """Scheduled reconciles of an in-sync Sync (interval 5 s, set at creation): API requests
        and time per reconcile, once controllers have stopped touching the new objects."""
        count = 'pullsync_reconcile_duration_seconds_count{kind="Sync",ready="True"}'
        total = 'pullsync_reconcile_duration_seconds_sum{kind="Sync",ready="True"}'

        def window(reconciles: int) -> tuple[float, float, dict[str, float]]:
            before = self.op.metrics()
            wait.until(lambda: self.op.metrics().get(count, 0) >= before.get(count, 0) + reconciles, timeout=120,
                       what=f"{reconciles} reconciles")  # fmt: skip
            after = self.op.metrics()
            done = after[count] - before.get(count, 0)
            verbs = {
                k.split('"')[1]: (after[k] - before.get(k, 0)) / done
                for k in after
                if k.startswith("pullsync_api_requests_total{") and after[k] != before.get(k, 0)
            }
            return done, (after[total] - before.get(total, 0)) / done, verbs

        # The controller-manager annotates new Deployments for a minute or so (20 QPS by
        # default); pullsync re-verifies each one it changes. Measure once that is over.
        settled = time.monotonic()
        _, seconds, verbs = window(3)
        while verbs and time.monotonic() - settled < 180:
            _, seconds, verbs = window(3)
        self.cluster.api("PATCH", sync_path(f"bench-{self.run}-{n}-0", "app"), {"spec": {"interval": "1h"}},
                         content_type="application/merge-patch+json")  # fmt: skip
        return {
            "objects": n,
            "requests_per_reconcile": round(sum(verbs.values()), 2),
            "by_verb": {k: round(v, 2) for k, v in verbs.items()},
            "seconds": round(seconds, 3),
        }

    def latency(self, commits: int, *, webhook: bool) -> dict[str, float]:
        home = self.namespace(f"bench-{self.run}-latency-{'hook' if webhook else 'poll'}")
        name, repo = self.source(home, {"cm.yaml": m.configmap("cm", "0")})
        spec: dict[str, Any] = {
            "url": self.git.url(name),
            "interval": "1h" if webhook else "5s",
            "secretRef": {"name": "git"},
        }
        if webhook:
            self.cluster.secret(home, "hook", {"token": "bench-token"})
            spec["webhookSecretRef"] = {"name": "hook"}
        create_gitrepo(self.cluster, home, spec)
        create_sync(self.cluster, home, interval="1h")
        wait.until(lambda: self.applied(home), timeout=60, what="the first revision")
        samples = []
        for i in range(1, commits + 1):
            commit = repo.commit({"cm.yaml": m.configmap("cm", str(i))}, f"change {i}")
            started = time.monotonic()
            if webhook:
                body = json.dumps({"after": commit}).encode()
                signature = hmac.new(b"bench-token", body, hashlib.sha256).hexdigest()
                status = post_webhook(
                    self.op.webhook_port,
                    f"/hooks/{home}/app",
                    body,
                    {"X-Hub-Signature-256": f"sha256={signature}"},
                )
                assert status == 202, status
            wait.until(lambda c=commit: self.applied(home).endswith(c), timeout=30, interval=0.01, what=f"commit {i}")
            samples.append(time.monotonic() - started)
        return {
            "commits": commits,
            "median_s": round(statistics.median(samples), 3),
            "p95_s": round(percentile(samples, 95), 3),
        }

    def drift(self, samples: int) -> dict[str, float]:
        home = f"bench-{self.run}-1000-2"  # namespace 2 holds Deployments (every third object)
        listing = self.cluster.api(
            "GET", f"/apis/apps/v1/namespaces/{home}/deployments?labelSelector=pullsync.dev/name"
        )
        deployment = listing["items"][0]["metadata"]
        path = f"/apis/apps/v1/namespaces/{home}/deployments/{deployment['name']}"
        times = []
        for i in range(samples):
            self.cluster.api(
                "PATCH", path + "/scale", {"spec": {"replicas": 7 + i}}, content_type="application/merge-patch+json"
            )
            started = time.monotonic()
            wait.until(
                lambda: (self.cluster.get(path) or {})["spec"]["replicas"] == 2,
                timeout=60,
                interval=0.01,
                what="revert",
            )
            times.append(time.monotonic() - started)
        return {"samples": samples, "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}

    def requests_over(self, seconds: float) -> dict[str, int]:
        """The operator's API requests by verb over the next `seconds` (a measurement
        window, not a synchronisation)."""
        before = self.op.metrics()
        time.sleep(seconds)
        return requests_between(before, self.op.metrics())

    def create_all(self, documents: list[dict[str, Any]]) -> float:
        """One `kubectl apply --server-side` of `documents`; when it began (monotonic)."""
        path = Path(tempfile.mkstemp(suffix=".json")[1])
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}))
        started = time.monotonic()
        kubectl = [str(Path(sys.executable).parent / "kubectl"), "apply", "--server-side", "-f", str(path)]
        subprocess.run(kubectl, env=self.cluster.env(), capture_output=True, check=True, timeout=900)
        path.unlink()
        return started

    def all_ready(self, prefix: str, count: int, revision: str = "") -> bool:
        syncs = (self.cluster.get("/apis/pullsync.dev/v1alpha1/syncs") or {}).get("items", [])
        mine = [s for s in syncs if s["metadata"]["namespace"].startswith(prefix)]
        return len(mine) == count and all(
            condition(s).get("status") == "True"
            and str((s.get("status") or {}).get("lastAppliedRevision", "")).endswith(revision)
            for s in mine
        )

    def fleet(self, count: int, interval_s: int = 60) -> dict[str, Any]:
        """Flux's published benchmark shape: `count` GitRepository + Sync pairs, each with a
        repository of its own holding 4 objects (a Deployment scaled to 0, a ServiceAccount,
        a ClusterIP Service, an Ingress), over 10 namespaces, created at once (one
        `kubectl apply`); the time until all are Ready and the operator's peak RSS; then
        the operator's API requests over the interval after (the first drift checks and
        the controllers' follow-ups: settling) and over the next interval (steady state)."""
        prefix = f"fleet-{self.run}-"
        self.start_operator(prefix + "*")
        homes = [self.namespace(f"{prefix}{i}") for i in range(NAMESPACES)]
        for home in homes:
            self.cluster.secret(home, "git", {"username": self.git.username, "password": self.git.password})
        documents: list[dict[str, Any]] = []
        for i in range(count):
            home, app = homes[i % NAMESPACES], f"app-{i}"
            repo = f"fleet-{self.run}-{i}"
            self.git.repo(repo).commit(fleet_app(app), "bench")
            meta = {"name": app, "namespace": home}
            source = {"url": self.git.url(repo), "interval": "1m", "secretRef": {"name": "git"}}
            documents.append({"apiVersion": API, "kind": "GitRepository", "metadata": meta, "spec": source})
            spec = {"sourceRef": {"kind": "GitRepository", "name": app}, "prune": True, "interval": f"{interval_s}s"}
            documents.append({"apiVersion": API, "kind": "Sync", "metadata": meta, "spec": spec})
        started = self.create_all(documents)
        wait.until(lambda: self.all_ready(prefix, count), timeout=900, interval=1.0, what=f"{count} Syncs Ready")
        all_ready = time.monotonic() - started
        rss = self.op.peak_rss_mb()
        # The controller-manager (20 requests/s by default) rolls the Deployments out for
        # minutes after: each Sync sees its health go InProgress -> Current (a status write
        # and an event each). Steady state is what follows, measured over one interval.
        before = self.op.metrics()
        wait.until(lambda: self.all_current(prefix, count), timeout=900, interval=2.0, what="every Sync Current")
        settled = time.monotonic() - started
        settling = requests_between(before, self.op.metrics())
        steady = self.requests_over(interval_s)
        self.stop_operator()
        return {
            "pairs": count,
            "all_ready_s": round(all_ready, 1),
            "peak_rss_mb": round(rss, 1),
            "all_current_s": round(settled, 1),
            "requests_until_current": settling,
            "interval_s": interval_s,
            "requests_steady_interval": steady,
        }

    def all_current(self, prefix: str, count: int) -> bool:
        syncs = (self.cluster.get("/apis/pullsync.dev/v1alpha1/syncs") or {}).get("items", [])
        mine = [s for s in syncs if s["metadata"]["namespace"].startswith(prefix)]
        return len(mine) == count and all(
            ((s.get("status") or {}).get("health") or {}).get("status") == "Current" for s in mine
        )

    def monorepo(self, count: int) -> dict[str, Any]:
        """`count` Syncs over ONE GitRepository (one path per app, 4 objects of Flux's shape
        each, spread over 10 target namespaces), created at once: the time until all are
        Ready, peak RSS, fetches of the first commit; then a commit that changes one app's
        path: fetches, renders and writes to managed objects until every Sync has it."""
        prefix = f"mono-{self.run}-"
        operator = self.start_operator(prefix + "*")
        home = self.namespace(f"{prefix}home")
        targets = [self.namespace(f"{prefix}{i}") for i in range(NAMESPACES)]
        name, repo = self.source(
            home, {f"apps/app-{i}/{f}": c for i in range(count) for f, c in fleet_app(f"app-{i}").items()}
        )
        first = repo.commit({}, "bench head")
        documents: list[dict[str, Any]] = [
            {
                "apiVersion": API,
                "kind": "GitRepository",
                "metadata": {"name": "mono", "namespace": home},
                "spec": {"url": self.git.url(name), "interval": "1h", "secretRef": {"name": "git"}},
            }
        ]
        for i in range(count):
            spec = {
                "sourceRef": {"kind": "GitRepository", "name": "mono"},
                "path": f"./apps/app-{i}",
                "targetNamespace": targets[i % NAMESPACES],
                "prune": True,
                "interval": "1h",
            }
            documents.append(
                {"apiVersion": API, "kind": "Sync", "metadata": {"name": f"app-{i}", "namespace": home}, "spec": spec}
            )
        started = self.create_all(documents)
        wait.until(lambda: self.all_ready(home, count, first), timeout=900, interval=1.0, what=f"{count} Syncs Ready")
        all_ready = time.monotonic() - started
        rss = operator.peak_rss_mb()

        def git_ops(samples: dict[str, float], operation: str) -> int:
            key = f'pullsync_git_operations_total{{operation="{operation}",result="ok"}}'
            return int(samples.get(key, 0))

        before = operator.metrics()
        audit = AuditLog(self.cluster.kubeconfig.parent / "audit.log", user=self.user)
        audit.mark()
        changed = fleet_app("app-7")["deploy.yaml"].replace("nginx:1.27", "nginx:1.28")
        second = repo.commit({"apps/app-7/deploy.yaml": changed}, "one app")
        commit_at = time.monotonic()
        request(self.cluster, gitrepo_path(home, "mono"))
        wait.until(lambda: self.all_ready(home, count, second), timeout=600, interval=0.5, what="the second commit")
        propagated = time.monotonic() - commit_at
        after = operator.metrics()
        events = audit.complete(self.cluster)
        writes = [
            e
            for e in events
            if e["verb"] in ("create", "update", "patch", "delete") and "dryRun" not in e["requestURI"]
        ]
        managed = [
            e
            for e in writes
            if e["objectRef"].get("apiGroup") != "pullsync.dev" and e["objectRef"]["resource"] != "events"
        ]
        self.stop_operator()
        return {
            "syncs": count,
            "objects": count * 4,
            "all_ready_s": round(all_ready, 1),
            "peak_rss_mb": round(rss, 1),
            "fetches_first_commit": git_ops(before, "fetch"),
            "second_commit": {
                "all_syncs_at_it_s": round(propagated, 1),
                "fetches": git_ops(after, "fetch") - git_ops(before, "fetch"),
                "renders": int(after.get("pullsync_renders_total", 0) - before.get("pullsync_renders_total", 0)),
                "dry_runs": sum(1 for e in events if "dryRun" in e["requestURI"]),
                "managed_writes": [
                    f"{e['verb']} {e['objectRef']['resource']}/{e['objectRef'].get('name')}" for e in managed
                ],
                "status_writes": sum(1 for e in writes if e["objectRef"].get("subresource") == "status"),
                "events": sum(1 for e in writes if e["objectRef"]["resource"] == "events"),
            },
        }

    def many_syncs(self, count: int) -> dict[str, float]:
        homes = [self.namespace(f"bench-{self.run}-many-{i}") for i in range(count)]
        started = time.monotonic()
        for home in homes:
            name, _ = self.source(home, {"cm.yaml": m.configmap("cm", home)})
            create_gitrepo(
                self.cluster, home, {"url": self.git.url(name), "interval": "1m", "secretRef": {"name": "git"}}
            )
            create_sync(self.cluster, home, interval="5m")
        wait.until(lambda: all(self.applied(h) for h in homes), timeout=300, interval=0.5, what=f"{count} Syncs")
        return {
            "syncs": count,
            "all_ready_s": round(time.monotonic() - started, 2),
            "peak_rss_mb": round(self.op.peak_rss_mb(), 1),
        }


PHASES = ("render", "initial", "latency", "many", "fleet", "monorepo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,3000")
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--fleet", type=int, default=1000, help="GitRepository + Sync pairs of Flux's shape")
    parser.add_argument("--monorepo", type=int, default=1000, help="Syncs over one GitRepository")
    parser.add_argument("--only", default=",".join(PHASES), help=f"phases to run, of {', '.join(PHASES)}")
    parser.add_argument("--only-fleet", action="store_true", help="run only the fleet phase (--only fleet)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    phases = {"fleet"} if args.only_fleet else set(args.only.split(","))
    assert phases <= set(PHASES), f"unknown phases: {phases - set(PHASES)}"

    results: dict[str, Any] = {"machine": machine(), "run": run_info(sys.argv[1:], phases)}
    if "render" in phases:
        results["render_overlays"] = render_overlays()
        print("render", results["render_overlays"], flush=True)
    cluster = Cluster.up()
    crds = [str(ROOT / "crds" / f"{plural}.pullsync.dev.yaml") for plural in ("syncs", "gitrepositories")]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds[0], "-f", crds[1])
    cluster.kubectl("wait", "--for=condition=Established", "crd/syncs.pullsync.dev", "crd/gitrepositories.pullsync.dev")
    cluster.kubectl("api-resources")  # warm kubectl's discovery cache: the baseline gets no cold start
    git = HttpGitServer(Path(tempfile.mkdtemp(prefix="bench-git-")))
    bench = Bench(cluster, git)
    try:
        run_phases(bench, phases, args, sizes, results)
    finally:
        bench.stop_operator()
        git.stop()
        for ns in json.loads(cluster.kubectl("get", "ns", "-o", "json").stdout)["items"]:
            if ns["metadata"]["name"].startswith(("bench-", "kbench-", "sbench-", "fbench-", "fleet-", "mono-")):
                cluster.delete_namespace(ns["metadata"]["name"])
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    write_docs(results)


def machine() -> dict[str, str]:
    """What the figures ran on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "memory_gib": f"{mem_kb / 2**20:.1f}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kubernetes": "1.20.2 (local etcd + kube-apiserver + kube-controller-manager)",
    }


def run_info(argv: list[str], phases: set[str]) -> dict[str, str]:
    """When, at which commit, with which arguments."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], check=False, capture_output=True, text=True
    )
    return {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": head.stdout.strip() or "unknown",
        "command": " ".join(["python bench/bench.py", *argv]),
        "phases": ", ".join(p for p in PHASES if p in phases),
    }


BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"


def write_docs(r: dict[str, Any]) -> None:
    """Replace the generated section of docs/performance.md with this run."""
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    mach, run = r["machine"], r["run"]
    section = "\n".join(
        [
            BEGIN,
            f"`{run['command']}` at commit {run['commit']}, {run['started']} (phases: {run['phases']}).",
            f"Machine: {mach['cpus']} CPUs ({mach['cpu_model']}), {mach['memory_gib']} GiB, Linux {mach['kernel']}, "
            f"Python {mach['python']}; Kubernetes {mach['kubernetes']} on loopback. Method: the phases as "
            "`bench/bench.py`'s docstring says (each with an operator process of its own); the goals are "
            "issue 16's. Written by the run itself; the sections below explain the figures.",
            table(r),
            END,
        ]
    )
    doc.write_text(head + section + tail if END in rest else text.rstrip("\n") + "\n\n" + section + "\n")


def goal(met: bool, what: str) -> str:
    return f"{what}: {'**met**' if met else '**missed**'}"


def run_phases(
    bench: Bench, phases: set[str], args: argparse.Namespace, sizes: list[int], results: dict[str, Any]
) -> None:
    """The phases that need the cluster, each with an operator of its own."""
    if phases & {"initial", "latency", "many"}:
        bench.start_operator("bench-*")
    if "initial" in phases:
        results["initial_sync"] = []
        for n in sizes:
            results["initial_sync"].append(bench.initial_sync(n))
            print("initial sync", results["initial_sync"][-1], flush=True)
            if n == 1000:
                results["no_op"] = bench.no_op(n)
                print("no-op", results["no_op"], flush=True)
                results["drift"] = bench.drift(5)
                print("drift", results["drift"], flush=True)
            if n == max(sizes):
                results["peak_rss_mb_at_max_objects"] = round(bench.op.peak_rss_mb(), 1)
    if "latency" in phases:
        results["latency_webhook"] = bench.latency(args.commits, webhook=True)
        print("webhook", results["latency_webhook"], flush=True)
        results["latency_polling_5s"] = bench.latency(args.commits, webhook=False)
        print("polling", results["latency_polling_5s"], flush=True)
    if "many" in phases:
        results["many_syncs"] = bench.many_syncs(100)
        print("many", results["many_syncs"], flush=True)
    if "fleet" in phases:
        results["fleet"] = bench.fleet(args.fleet)
        print("fleet", results["fleet"], flush=True)
    if "monorepo" in phases:
        results["monorepo"] = bench.monorepo(args.monorepo)
        print("monorepo", results["monorepo"], flush=True)


def table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("measure", "pullsync", "kubectl apply --server-side", "ratio", "goal")]
    for x in r.get("initial_sync", []):
        target = goal(x["ratio"] <= 0.5, "0.5 or better") if x["objects"] == 1000 else ""
        rows.append(
            (
                f"initial sync, {x['objects']} objects",
                f"{x['pullsync_s']} s",
                f"{x['kubectl_s']} s",
                str(x["ratio"]),
                target,
            )
        )
        same = x.get("kubectl_as_operator")
        if same:
            rows.append(
                (
                    "  kubectl as the operator's ServiceAccount (same identity)",
                    "",
                    f"{same['seconds']} s",
                    str(same["ratio"]),
                )
            )
        f = x["floor"]
        server = f"kube-apiserver {f['kube-apiserver_cpu_s']} + etcd {f['etcd_cpu_s']} CPU-s"
        rows.append((f"  floor: bare dry-run all, then apply all ({server})", f"{f['total_s']} s", "", str(f["ratio"])))
    if "no_op" in r:
        n = r["no_op"]
        rows.append(
            (f"no-op reconcile, {n['objects']} objects", f"{n['requests_per_reconcile']} requests, {n['seconds']} s")
        )
    for key, label in (
        ("latency_webhook", "commit to applied, webhook"),
        ("latency_polling_5s", "commit to applied, poll 5 s"),
    ):
        if key in r:
            rows.append((label, f"median {r[key]['median_s']} s, p95 {r[key]['p95_s']} s"))
    if "drift" in r:
        rows.append(("drift corrected (scale)", f"median {r['drift']['median_s']} s, max {r['drift']['max_s']} s"))
    if "peak_rss_mb_at_max_objects" in r:
        top = max(x["objects"] for x in r["initial_sync"])
        rows.append((f"operator peak RSS, {top} objects", f"{r['peak_rss_mb_at_max_objects']} MB"))
    if "many_syncs" in r:
        s = r["many_syncs"]
        rows.append(
            ("100 GitRepositories + 100 Syncs", f"Ready in {s['all_ready_s']} s, peak RSS {s['peak_rss_mb']} MB")
        )
    if "fleet" in r:
        f = r["fleet"]
        steady = f["requests_steady_interval"]
        writes = sum(n for verb, n in steady.items() if verb in {"create", "update", "patch", "delete"})
        rows += [
            (
                f"{f['pairs']} GitRepository + Sync pairs (Flux's shape), all Ready",
                f"{f['all_ready_s']} s, peak RSS {f['peak_rss_mb']} MB",
                "",
                "",
                goal(f["all_ready_s"] < 120 and f["peak_rss_mb"] < 250, "under 2 min, under 250 MB"),
            ),
            (
                f"  then every health Current; one {f['interval_s']} s interval after it",
                f"at {f['all_current_s']} s (requests until then: {f['requests_until_current']}); "
                f"then {sum(steady.values())} API requests {steady}",
                "",
                "",
                goal(writes == 0 and sum(steady.values()) <= 5, "no writes or dry-runs, a few reads"),
            ),
        ]
    if "monorepo" in r:
        x = r["monorepo"]
        c = x["second_commit"]
        rows.append(
            (
                f"{x['syncs']} Syncs over one GitRepository",
                f"Ready in {x['all_ready_s']} s, peak RSS {x['peak_rss_mb']} MB, {x['fetches_first_commit']} fetch; "
                f"a commit to one app: {c['fetches']} fetch, {c['renders']} render, {c['dry_runs']} dry-run, "
                f"{len(c['managed_writes'])} write ({', '.join(c['managed_writes'])}), all Syncs at it in "
                f"{c['all_syncs_at_it_s']} s",
                "",
                "",
                goal(
                    x["fetches_first_commit"] == 1 and c["fetches"] == 1 and c["renders"] == 1,
                    "one fetch per commit, only that app re-planned",
                ),
            )
        )
    if "render_overlays" in r:
        x = r["render_overlays"]
        rows.append(
            (
                f"render {x['overlays']} kustomize overlays ({x['objects']} objects)",
                f"{x['total_s']} s, median {x['median_ms']} ms per overlay, max {x['max_ms']} ms",
            )
        )
    lines = ["| " + " | ".join(row + ("",) * (5 - len(row))) + " |" for row in rows]
    lines.insert(1, "|---|---|---|---|---|")
    return "\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
