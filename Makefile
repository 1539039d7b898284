# pullsync: the two set-up commands are `make demo` and `make test` (see README.md).
# Both install everything they need on a fresh Debian machine (as root, or with sudo).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export KUBECONFIG := $(CURDIR)/.cluster/kubeconfig

.PHONY: all deps venv cluster cluster-down lint unit e2e test demo demo-down bench image image-test clean

all: test

# Debian packages: Go, etcd, git, sshd, ... (see hack/cluster.sh deps)
deps:
	@hack/cluster.sh deps

$(VENV)/.installed: pyproject.toml
	@hack/cluster.sh deps
	@python3 -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# A real control plane (etcd + kube-apiserver + kube-controller-manager) on loopback.
cluster: venv
	@hack/cluster.sh up

cluster-down:
	@hack/cluster.sh down

lint: venv
	$(VENV)/bin/ruff check operator tests hack bench
	$(VENV)/bin/ruff format --check operator tests hack bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	@diff -r crds charts/pullsync/crds >/dev/null 2>&1 || [ ! -d charts/pullsync/crds ] || { echo "charts/pullsync/crds differs from crds/"; exit 1; }

unit: venv
	$(VENV)/bin/pytest tests/unit

e2e: cluster
	$(VENV)/bin/pytest tests/e2e

# The README's test command: lint, type checks, layering, unit and end-to-end tests.
test: lint cluster
	$(VENV)/bin/pytest

# The README's main job: operator + local cluster + local git server with the examples.
demo: cluster
	@hack/demo.sh

demo-down:
	@hack/demo.sh down

# The operator image (podman, or docker where an engine answers; see hack/image.sh).
image: venv
	@hack/image.sh

# The built image run as OpenShift runs it: an arbitrary UID in group 0, a read-only root
# filesystem, writable only where the chart mounts volumes (needs root: mount, chroot).
image-test: image cluster
	$(VENV)/bin/pytest tests/image

# Figures, not a test: prints a table and writes bench/results.json (see docs/performance.md).
bench: cluster
	$(VENV)/bin/python bench/bench.py

clean: cluster-down
	rm -rf $(VENV) .cluster .pytest_cache .mypy_cache .ruff_cache
