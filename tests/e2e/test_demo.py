"""`make demo`, the README's main command: the demo comes up Ready and goes down cleanly."""

import subprocess
import sys

from support.cluster import ROOT, AuditLog, Cluster, condition, sync_path


def test_the_demo_syncs_the_examples_and_stops(cluster: Cluster) -> None:
    demo = [sys.executable, str(ROOT / "hack" / "demo.py")]
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log", user="system:serviceaccount:pullsync-demo:demo-pullsync")
    audit.mark()
    up = subprocess.run([*demo, "up"], capture_output=True, text=True, timeout=180, check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "pullsync demo is up" in up.stdout
        sync = cluster.get(sync_path("pullsync-demo", "demo"))
        assert condition(sync)["status"] == "True"
        assert sync["status"]["health"]["status"] == "Current"  # with `wait: true`, and the fake kubelet
        assert cluster.get("/apis/apps/v1/namespaces/demo-app/deployments/web") is not None
        assert condition(cluster.get(sync_path("pullsync-demo", "web-staging")))["status"] == "True"
        assert cluster.get("/apis/apps/v1/namespaces/web-staging/deployments/staging-web") is not None
        writes = [e["verb"] for e in audit.requests("demo-app") if e["verb"] in {"create", "patch"}]
        assert writes, "the demo's operator applied nothing as the chart's ServiceAccount"
    finally:
        down = subprocess.run([*demo, "down"], capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert "demo stopped" in down.stdout
