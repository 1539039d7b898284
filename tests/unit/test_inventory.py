"""Inventory ids: `<namespace>_<name>_<group>_<kind>`, where only names may hold `_`."""

import pytest

from pullsync.sync import inventory


@pytest.mark.parametrize(
    ("obj", "parts"),
    [
        (
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "ci_deployer", "namespace": "team-a"},
            },
            ("team-a", "ci_deployer", "rbac.authorization.k8s.io", "RoleBinding"),
        ),
        (
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "_a__b_"}},
            ("", "_a__b_", "rbac.authorization.k8s.io", "ClusterRole"),
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}},
            ("n", "c", "", "ConfigMap"),
        ),
    ],
)
def test_names_with_underscores_read_back_whole(obj: dict, parts: tuple[str, str, str, str]) -> None:
    entry = inventory.Entry.of(obj)
    assert (entry.namespace, entry.name, entry.group, entry.kind) == parts
    assert inventory.load({"inventory": inventory.dump([entry])}) == [entry]


def test_stale_compares_whole_ids() -> None:
    def role(name: str) -> inventory.Entry:
        return inventory.Entry.of(
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "namespace": "n"}}
        )

    assert inventory.stale([role("ci_deployer"), role("ci")], [role("ci")]) == [role("ci_deployer")]
    assert role("ci_deployer").describe() == "Role/n/ci_deployer"
