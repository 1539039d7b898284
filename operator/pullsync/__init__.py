"""pullsync: a pull-based GitOps operator for Kubernetes and OpenShift.

Two controllers (`source`: GitRepository, `sync`: Sync) on one runtime (`runtime`),
with one API client (`kube`), a renderer that never reaches the cluster (`render`), the
HTTP edge (`web`) and the contract's names (`api`). None of them knows Kopf: only the
thin handlers (`pullsync.handlers`) do, started by the command line (`pullsync.cli`).
The rules are import-linter contracts in pyproject.toml.
"""

__version__ = "0.1.0"
