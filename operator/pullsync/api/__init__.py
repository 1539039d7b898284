"""The pullsync API contract in code: group, kinds, label and annotation names, reasons,
and typed read-only views of the GitRepository and Sync specs.

Everything users and acceptance checks rely on by name lives here (see shared/api.md),
so that no other module spells these strings itself.
"""

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from pullsync.api import durations

GROUP = "pullsync.dev"
VERSION = "v1alpha1"
FIELD_MANAGER = "pullsync"

LABEL_NAME = "pullsync.dev/name"
LABEL_NAMESPACE = "pullsync.dev/namespace"
LABEL_SHARD = "pullsync.dev/shard"  # on GitRepositories, Syncs and Previews: which `pullsync run --shard` handles them
ANNOTATION_PRUNE = "pullsync.dev/prune"
ANNOTATION_RECONCILE = "pullsync.dev/reconcile"
ANNOTATION_FORCE = "pullsync.dev/force"
ANNOTATION_REQUESTED_AT = "pullsync.dev/requestedAt"
FINALIZER = "pullsync.dev/finalizer"

# Condition types.
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
HEALTHY = "Healthy"
FETCH_FAILED = "FetchFailed"

# Condition reasons (PascalCase, as Flux).
SUCCEEDED = "Succeeded"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"  # failed for the moment (git, the API server): retried
ARTIFACT_FAILED = "ArtifactFailed"  # the source's commit cannot be read from the git cache
BUILD_FAILED = "BuildFailed"
VALIDATION_FAILED = "ValidationFailed"
APPLY_FAILED = "ApplyFailed"
PRUNE_FAILED = "PruneFailed"
ACCESS_DENIED = "AccessDenied"
SOURCE_NOT_READY = "SourceNotReady"
SUSPENDED = "Suspended"
HEALTH_CHECK_FAILED = "HealthCheckFailed"
DEPENDENCY_NOT_READY = "DependencyNotReady"
INTERNAL_ERROR = "InternalError"  # a bug in pullsync: the operator log has the traceback
PUBLISH_FAILED = "PublishFailed"  # a Preview's plan could not be posted to its provider

# A Preview's result per ref (status.previews[].result).
PLANNED = "Planned"
PLAN_FAILED = "Failed"


@dataclasses.dataclass(frozen=True)
class GitRef:
    """The ref to follow: commit wins over semver, semver over tag, tag over branch."""

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    commit: str | None = None

    def describe(self) -> str:
        """A short human description, e.g. `branch main`."""
        for kind in ("commit", "semver", "tag", "branch"):
            value = getattr(self, kind)
            if value:
                return f"{kind} {value}"
        return "the remote's HEAD branch"


_URL_PASSWORD = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*:[^/@]*@")


@dataclasses.dataclass(frozen=True)
class GitRepositorySpec:
    """A typed view of GitRepository.spec, validated."""

    url: str
    ref: GitRef
    interval: float
    timeout: float
    secret_name: str | None
    webhook_secret_name: str | None
    suspend: bool
    ignore: str | None  # gitignore syntax

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> "GitRepositorySpec":
        """Raise ValueError with a field-naming message if the spec is unusable."""
        ref = spec.get("ref") or {}
        url = str(spec.get("url") or "")
        if _URL_PASSWORD.match(url):  # stored before the schema refused it
            raise ValueError(
                "spec.url: holds a password (user:password@), which anyone who may read this GitRepository "
                "reads: put the credentials in a Secret named by spec.secretRef"
            )
        return cls(
            url=url,
            ref=GitRef(**{k: ref[k] for k in ("branch", "tag", "semver", "commit") if ref.get(k)}),
            interval=_duration(spec, "interval", "1m"),
            timeout=_duration(spec, "timeout", "60s"),
            secret_name=(spec.get("secretRef") or {}).get("name"),
            webhook_secret_name=(spec.get("webhookSecretRef") or {}).get("name"),
            suspend=bool(spec.get("suspend", False)),
            ignore=spec.get("ignore") or None,
        )


@dataclasses.dataclass(frozen=True)
class HelmSpec:
    """Sync.spec.helm: how a chart at spec.path is templated."""

    release_name: str | None = None  # default: the Sync's name
    values_files: tuple[str, ...] = ()  # relative to spec.path, inside the repository
    values: str = "{}"  # inline values as JSON (hashable), merged last

    @classmethod
    def parse(cls, helm: Mapping[str, Any]) -> "HelmSpec":
        files = helm.get("valuesFiles") or []
        values = helm.get("values") or {}
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ValueError("spec.helm.valuesFiles: must be a list of paths")
        if not isinstance(values, dict):
            raise ValueError("spec.helm.values: must be a mapping")
        return cls(
            release_name=helm.get("releaseName") or None,
            values_files=tuple(files),
            values=json.dumps(values, sort_keys=True),
        )


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    """An object named in spec.healthChecks."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None


@dataclasses.dataclass(frozen=True)
class SyncSpec:
    """A typed view of Sync.spec, validated."""

    source_name: str
    source_namespace: str | None
    path: str
    prune: bool
    interval: float
    retry_interval: float
    timeout: float
    target_namespace: str | None
    service_account_name: str | None
    force: bool
    suspend: bool
    helm: HelmSpec | None = None
    wait: bool = False
    health_checks: tuple[ObjectRef, ...] = ()
    depends_on: tuple[tuple[str | None, str], ...] = ()  # (namespace or None: the Sync's, name)

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> "SyncSpec":
        """Raise ValueError with a field-naming message if the spec is unusable."""
        source = spec.get("sourceRef") or {}
        if source.get("kind", "GitRepository") != "GitRepository":
            raise ValueError(f"spec.sourceRef.kind: {source.get('kind')!r} is not supported, use GitRepository")
        interval = _duration(spec, "interval", "5m")
        return cls(
            source_name=str(source.get("name") or ""),
            source_namespace=source.get("namespace") or None,
            path=str(spec.get("path") or "./"),
            prune=bool(spec.get("prune", False)),
            interval=interval,
            retry_interval=_duration(spec, "retryInterval", None) if spec.get("retryInterval") else interval,
            timeout=_duration(spec, "timeout", "2m"),
            target_namespace=spec.get("targetNamespace") or None,
            service_account_name=spec.get("serviceAccountName") or None,
            force=bool(spec.get("force", False)),
            suspend=bool(spec.get("suspend", False)),
            helm=HelmSpec.parse(spec["helm"]) if isinstance(spec.get("helm"), dict) else None,
            wait=bool(spec.get("wait", False)),
            health_checks=tuple(
                ObjectRef(str(c["apiVersion"]), str(c["kind"]), str(c["name"]), c.get("namespace") or None)
                for c in spec.get("healthChecks") or []
            ),
            depends_on=tuple((d.get("namespace") or None, str(d["name"])) for d in spec.get("dependsOn") or []),
        )


# Preview.spec.provider.type, and its default address (None: required).
PROVIDER_ADDRESSES = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com",
    "gitea": None,
    "generic": None,
}


@dataclasses.dataclass(frozen=True)
class ProviderSpec:
    """Preview.spec.provider: where plans are published."""

    type: str  # github | gitlab | gitea | generic
    address: str
    repository: str  # org/repo (GitLab: the project's path)
    secret_name: str | None  # key `token`

    @classmethod
    def parse(cls, provider: Mapping[str, Any]) -> "ProviderSpec":
        kind = str(provider.get("type") or "")
        if kind not in PROVIDER_ADDRESSES:
            raise ValueError(f"spec.provider.type: {kind!r} is not one of {', '.join(PROVIDER_ADDRESSES)}")
        address = str(provider.get("address") or PROVIDER_ADDRESSES[kind] or "")
        if not address:
            raise ValueError(f"spec.provider.address: required for type {kind}")
        repository = str(provider.get("repository") or "")
        if kind != "generic" and not repository:
            raise ValueError(f"spec.provider.repository: required for type {kind} (e.g. org/deploy-config)")
        return cls(kind, address.rstrip("/"), repository, (provider.get("secretRef") or {}).get("name"))


@dataclasses.dataclass(frozen=True)
class PreviewSpec:
    """A typed view of Preview.spec, validated."""

    sync_name: str
    refs: tuple[str, ...]  # globs over the remote's ref names
    interval: float
    provider: ProviderSpec | None
    suspend: bool

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> "PreviewSpec":
        """Raise ValueError with a field-naming message if the spec is unusable."""
        name = str((spec.get("syncRef") or {}).get("name") or "")
        if not name:
            raise ValueError("spec.syncRef.name: required")
        refs = spec.get("refs") or ["refs/pull/*/head"]
        if not isinstance(refs, list) or not all(isinstance(r, str) and r.startswith("refs/") for r in refs):
            raise ValueError("spec.refs: must be a list of ref globs starting with refs/ (e.g. refs/pull/*/head)")
        provider = spec.get("provider")
        return cls(
            sync_name=name,
            refs=tuple(refs),
            interval=_duration(spec, "interval", "1m"),
            provider=ProviderSpec.parse(provider) if isinstance(provider, dict) else None,
            suspend=bool(spec.get("suspend", False)),
        )


def _duration(spec: Mapping[str, Any], field: str, default: str | None) -> float:
    try:
        return durations.parse(str(spec.get(field) or default))
    except ValueError as e:
        raise ValueError(f"spec.{field}: {e}") from None


def owner_labels(name: str, namespace: str) -> dict[str, str]:
    """The labels that mark an object as applied by the Sync `namespace/name`."""
    return {LABEL_NAME: name, LABEL_NAMESPACE: namespace}


def shard_of(obj: Mapping[str, Any]) -> str | None:
    """The shard a GitRepository, Sync or Preview belongs to (None: the unsharded operator's)."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_SHARD) or None


def is_disabled(obj: Mapping[str, Any], annotation: str) -> bool:
    """True when the object carries `annotation: disabled`."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get(annotation) == "disabled"
