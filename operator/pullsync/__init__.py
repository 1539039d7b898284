"""pullsync: a pull-based GitOps operator for Kubernetes and OpenShift.

The package is laid out as an engine (git source, render, plan, apply, prune, status
conditions, the API client) that knows nothing of Kopf, and a thin layer of Kopf
handlers (`pullsync.handlers`) started by the command line (`pullsync.cli`).
"""

__version__ = "0.1.0"
