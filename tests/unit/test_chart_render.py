"""The Helm chart, rendered offline: values checked, OpenShift-ready pod, RBAC per mode."""

import filecmp
from typing import Any

import pytest

from support.cluster import ROOT
from support.helm import CHART, helm, one, render

MODES = {
    "default (cluster-wide)": [],
    "namespaced": ["watchNamespaces={team-a,team-b}"],
    "high availability": ["replicas=2", "podDisruptionBudget.enabled=true"],
    "everything on": ["route.enabled=true", "ingress.enabled=true", "networkPolicy.enabled=true"],
}


def test_the_chart_crds_are_byte_identical_to_crds() -> None:
    names = sorted(p.name for p in (ROOT / "crds").iterdir())
    assert names == sorted(p.name for p in (CHART / "crds").iterdir())
    _, mismatch, errors = filecmp.cmpfiles(ROOT / "crds", CHART / "crds", names, shallow=False)
    assert (mismatch, errors) == ([], [])


@pytest.mark.parametrize("mode", MODES)
def test_lint_and_template_succeed(mode: str) -> None:
    args = [a for s in MODES[mode] for a in ("--set", s)]
    helm("lint", "--strict", str(CHART), *args)
    assert one(render(*MODES[mode]), "Deployment")


@pytest.mark.parametrize(
    ("value", "words"),
    [("bogus=1", "property bogus is not allowed"), ("replicas=two", "expected: integer"),
     ("service.type=Magic", "service.type must be one of")],
)  # fmt: skip
def test_wrong_values_are_rejected(value: str, words: str) -> None:
    result = helm("template", "x", str(CHART), "--set", value, check=False)
    assert result.returncode != 0
    assert words in result.stderr.lower()


@pytest.mark.parametrize("mode", MODES)
def test_the_pod_satisfies_openshift_restricted_v2(mode: str) -> None:
    pod = one(render(*MODES[mode]), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    for context in (pod["securityContext"], security):
        assert "runAsUser" not in context  # OpenShift assigns the UID
        assert "fsGroup" not in context
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "HOME", "value": "/tmp"} in container["env"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/var/cache/pullsync", "/tmp"}
    assert all("emptyDir" in v for v in pod["volumes"])
    assert "--leader-elect" in container["args"]


def test_namespaced_mode_grants_roles_only_in_the_watched_namespaces() -> None:
    objects = render(*MODES["namespaced"])
    roles = {
        o["metadata"]["namespace"]: o for o in objects if o["kind"] == "Role" and "leader" not in o["metadata"]["name"]
    }
    assert set(roles) == {"team-a", "team-b"}
    cluster_rules = [rule for o in objects if o["kind"] == "ClusterRole" for rule in o["rules"]]
    assert cluster_rules  # the operator reads CRDs and namespaces cluster-wide: checked below
    for rule in cluster_rules:
        assert "secrets" not in rule["resources"]
        assert "*" not in rule["resources"]
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
    args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args


def test_cluster_wide_mode_binds_the_managed_rules_cluster_wide() -> None:
    objects = render()
    rules = next(o for o in objects if o["kind"] == "ClusterRole" and not o["metadata"]["name"].endswith("-base"))[
        "rules"
    ]
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]} in rules
    assert any("impersonate" in r["verbs"] and r["resources"] == ["serviceaccounts"] for r in rules)
    assert not [o for o in objects if o["kind"] == "Role" and "leader" not in o["metadata"]["name"]]


def test_ha_renders_two_replicas_and_a_disruption_budget() -> None:
    objects = render(*MODES["high availability"])
    assert one(objects, "Deployment")["spec"]["replicas"] == 2
    # A standby is Ready: an update starts a new pod before it stops an old one.
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert one(objects, "Deployment")["spec"]["strategy"] == strategy
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_route_and_ingress_expose_only_the_webhook_receiver() -> None:
    objects = render(*MODES["everything on"])
    route = one(objects, "Route")
    assert route["spec"]["path"] == "/hooks/"
    assert route["spec"]["port"]["targetPort"] == "webhook"
    path = one(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]
    assert (path["path"], path["backend"]["service"]["port"]["name"]) == ("/hooks/", "webhook")


def test_the_dockerfile_is_hadolint_clean() -> None:
    import subprocess
    import sys
    from pathlib import Path

    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_shards_get_a_deployment_lease_and_service_each_and_no_selector_overlaps() -> None:
    objects = render("shards={a,b}")
    deployments = {d["metadata"]["name"]: d for d in objects if d["kind"] == "Deployment"}
    assert set(deployments) == {"pullsync", "pullsync-a", "pullsync-b"}
    for name, deployment in deployments.items():
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        shard = name.removeprefix("pullsync").removeprefix("-") or None
        assert f"--leader-election-id={name}" in args
        assert [a for a in args if a.startswith("--shard")] == ([f"--shard={shard}"] if shard else [])
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    selectors = [d["spec"]["selector"]["matchLabels"] for d in deployments.values()]
    services = [s["spec"]["selector"] for s in objects if s["kind"] == "Service"]
    for selector in selectors + services:  # each selects the pods of exactly one Deployment
        matched = [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]
        assert len(matched) == 1, (selector, matched)
    assert [d["metadata"]["name"] for d in render() if d["kind"] == "Deployment"] == ["pullsync"]


def test_with_shards_each_deployment_has_its_disruption_budget_and_the_network_policy_covers_all() -> None:
    objects = render("shards={a,b}", "podDisruptionBudget.enabled=true", "networkPolicy.enabled=true")
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in objects if d["kind"] == "Deployment"
    }

    def selected(selector: dict[str, Any]) -> set[str]:
        """The Deployments whose pods the label selector selects (matchLabels, In)."""
        return {
            name
            for name, labels in pods.items()
            if selector.get("matchLabels", {}).items() <= labels.items()
            and all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))
        }

    budgets = {
        b["metadata"]["name"]: selected(b["spec"]["selector"]) for b in objects if b["kind"] == "PodDisruptionBudget"
    }
    assert budgets == {"pullsync": {"pullsync"}, "pullsync-a": {"pullsync-a"}, "pullsync-b": {"pullsync-b"}}
    assert selected(one(objects, "NetworkPolicy")["spec"]["podSelector"]) == set(pods)
