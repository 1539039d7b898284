"""Plan: resolve, pair and dry-run every desired object, and diff it against the live one.

For each object the desired state is the server-side-apply dry-run result (the server
merges, defaults and runs admission, so defaulted fields cause no false diffs); the plan
for it is the RFC 6902 JSON patch from the live object to that result, ignoring fields
the server owns. Objects that must wait for stage 1 are `deferred` and dry-run after
stage 1 is applied: those in a Namespace of the same set that does not exist yet (a copy
is dry-run in an existing namespace first, to find invalid ones before any write), custom
resources of a CRD the set creates or changes, bindings of a role it creates or changes.
Here too: the apply order of kinds, and the rule that an object belongs to one Sync.
"""

import asyncio
import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import jsonpatch

from pullsync import api, kube
from pullsync.kube import fingerprint, watchcache
from pullsync.render.documents import Document
from pullsync.runtime import metrics, redact
from pullsync.sync import inventory

T = TypeVar("T")

CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")
RBAC = "rbac.authorization.k8s.io"
STAGE1 = {CRD, ("", "Namespace"), (RBAC, "ClusterRole"), (RBAC, "Role")}
# Apply order within a stage (prune goes in reverse): what others refer to first, workloads
# after their configuration, custom resources after the built-in kinds, webhooks last.
KIND_ORDER = (
    "Namespace", "CustomResourceDefinition", "PriorityClass", "StorageClass", "ClusterRole", "Role",
    "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy", "ServiceAccount", "Secret",
    "ConfigMap", "PersistentVolume", "PersistentVolumeClaim", "ClusterRoleBinding", "RoleBinding",
    "Service", "Endpoints", "IngressClass", "PodDisruptionBudget", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob",
    "HorizontalPodAutoscaler", "Ingress", "APIService",
)  # fmt: skip
LAST_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


class PlanError(Exception):
    """Validation failed; `reason` is a condition reason (ValidationFailed, AccessDenied, ...);
    `transient` when only the server's state (no answer, 429, 5xx) made it fail;
    `missing_namespace` when a Namespace that does not exist yet made it fail."""

    def __init__(
        self, reason: str, message: str, *, transient: bool = False, missing_namespace: str | None = None
    ) -> None:
        self.reason = reason
        self.transient = transient
        self.missing_namespace = missing_namespace
        super().__init__(message)


@dataclasses.dataclass
class Item:
    """One desired object paired with where it lives (`prepare`); what the server makes of
    it is its `Planned` (`dry_run`)."""

    doc: Document
    resource: kube.Resource
    deferred: bool = False  # waits for stage 1: its Namespace or CRD is created by the same set
    new_namespace: bool = False  # deferred for its Namespace, which the same set creates
    depends: "Item | None" = None  # the CRD of a custom resource, the role of a binding, in the same set

    @functools.cached_property
    def digest(self) -> str:
        """A hash of the desired object (what git says, with namespace and labels) and of
        what it depends on: a plan checked against an older CRD schema is never reused."""
        text = json.dumps(self.obj, sort_keys=True, separators=(",", ":")) + (
            self.depends.digest if self.depends else ""
        )
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def obj(self) -> dict[str, Any]:
        return self.doc.obj

    @functools.cached_property
    def entry(self) -> inventory.Entry:
        return inventory.Entry.of(self.obj)

    @property
    def group_kind(self) -> tuple[str, str]:
        return (self.obj["apiVersion"].rpartition("/")[0], self.obj["kind"])

    @property
    def stage(self) -> int:
        return 1 if self.group_kind in STAGE1 else 2

    @property
    def rank(self) -> int:
        return rank(self.obj["kind"])


@dataclasses.dataclass(frozen=True)
class Planned:
    """What the dry-run says of one item: its live object, the object as the server would
    make it (`result`), and the RFC 6902 patch from one to the other."""

    item: Item
    live: dict[str, Any] | None
    result: dict[str, Any] | None = None  # None when left alone, or when recreated
    patch: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    recreate: bool = False  # an immutable field changed and force is on

    @property
    def left_alone(self) -> bool:
        """`pullsync.dev/reconcile: disabled` on an existing object: never changed."""
        return self.live is not None and (
            api.is_disabled(self.live, api.ANNOTATION_RECONCILE)
            or api.is_disabled(self.item.obj, api.ANNOTATION_RECONCILE)
        )

    @property
    def changed(self) -> bool:
        return (bool(self.patch) or self.recreate) and not self.left_alone


def rank(kind: str) -> int:
    """Where `kind` goes in the apply order (KIND_ORDER, then custom kinds, then webhooks)."""
    if kind in LAST_KINDS:
        return len(KIND_ORDER) + 1
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def waves(items: Iterable[T], key: Callable[[T], int]) -> list[list[T]]:
    """`items` grouped by `key`, lowest first: each group is written before the next."""
    groups: dict[int, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [groups[k] for k in sorted(groups)]


def defer_dependents(items: list[Item], stage1: list[Planned]) -> None:
    """Objects whose CRD or role changes in stage 1 are planned only after stage 1: a dry-run
    now would check them against the old schema or the old rules."""
    changing = {p.item.entry.id for p in stage1 if p.changed}
    for item in items:
        if item.stage == 2 and item.depends is not None and item.depends.entry.id in changing:
            item.deferred = True


async def bounded(limit: int, tasks: Iterable[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run `tasks` (each started only when its turn comes) with at most `limit` in flight;
    results (or exceptions) in order. Once one finds the whole API server unavailable (no
    answer, 429, 503), those not started yet are not sent: they fail with the same error
    (a struggling server gets no pile of requests that would fail too)."""
    semaphore = asyncio.Semaphore(limit)
    halted: list[BaseException] = []

    async def one(task: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            if halted:
                raise halted[0]
            try:
                return await task()
            except kube.ApiError as e:
                if kube.unavailable(e):
                    halted.append(e)
                raise

    return await asyncio.gather(*(one(t) for t in tasks), return_exceptions=True)


async def prepare(
    client: kube.Client,
    docs: list[Document],
    *,
    target_namespace: str,
    operator: kube.Client,
    cache: watchcache.LiveCache | None = None,
) -> list[Item]:
    """Resolve kinds, default namespaces, check uniqueness and namespaces (no writes).

    Whether a namespace exists is asked with the operator's own identity (`operator`):
    a tenant's ServiceAccount usually may not read Namespaces."""
    crds = {
        (d.obj.get("spec", {}).get("group", ""), d.obj.get("spec", {}).get("names", {}).get("kind", "")): d
        for d in docs
        if (d.obj["apiVersion"].rpartition("/")[0], d.obj["kind"]) == CRD
    }
    items: list[Item] = []
    unknown: dict[tuple[str, str], list[Document]] = {}
    for doc in docs:
        obj = doc.obj
        resource = await client.resource(obj["apiVersion"], obj["kind"])
        group = obj["apiVersion"].rpartition("/")[0]
        crd = crds.get((group, obj["kind"]))
        if resource is None and crd is None:
            unknown.setdefault((obj["apiVersion"], obj["kind"]), []).append(doc)
            continue
        deferred = resource is None
        if resource is None:
            assert crd is not None
            resource = _crd_resource(doc, crd)
        meta = obj["metadata"]
        if resource.namespaced:
            meta["namespace"] = meta.get("namespace") or target_namespace
        else:
            meta.pop("namespace", None)
        items.append(Item(doc, resource, deferred=deferred))
    if unknown:
        raise _unknown_kinds(unknown)
    by_id = {item.entry.id: item for item in items}
    for item in items:
        item.depends = _dependency(item, crds, by_id)
    seen: dict[str, Item] = {}
    for item in items:
        other = seen.setdefault(item.entry.id, item)
        if other is not item:
            raise PlanError(
                api.VALIDATION_FAILED,
                f"{item.doc.where}: {item.entry.describe()} is also defined in {other.doc.where}",
            )
    await _check_namespaces(operator, items, cache)
    return items


def _dependency(item: Item, crds: dict[tuple[str, str], Document], by_id: dict[str, Item]) -> Item | None:
    """The item of the same set that `item` needs first: its CRD, or the role it binds."""
    crd = crds.get(item.group_kind)
    if crd is not None:
        return by_id.get(f"_{crd.obj['metadata']['name']}_{CRD[0]}_{CRD[1]}")
    if item.group_kind in ((RBAC, "RoleBinding"), (RBAC, "ClusterRoleBinding")):
        ref = item.obj.get("roleRef") or {}
        if ref.get("kind") == "Role":
            return by_id.get(f"{item.obj['metadata'].get('namespace', '')}_{ref.get('name')}_{RBAC}_Role")
        if ref.get("kind") == "ClusterRole":
            return by_id.get(f"_{ref.get('name')}_{RBAC}_ClusterRole")
    return None


def _unknown_kinds(unknown: dict[tuple[str, str], list[Document]]) -> PlanError:
    """Every kind the server does not serve (and no CRD of the set defines), each once."""
    kinds = []
    for (api_version, kind), docs in unknown.items():
        more = f" and {len(docs) - 1} more" if len(docs) > 1 else ""
        kinds.append(f"{kind} in {api_version} ({docs[0].where}{more})")
    return PlanError(
        api.VALIDATION_FAILED,
        f"unknown kind{'s' if len(kinds) > 1 else ''}: {'; '.join(kinds)}: no such API on the server, "
        "and no CustomResourceDefinition for it in this Sync",
    )


def _crd_resource(doc: Document, crd: Document) -> kube.Resource:
    """Where objects of a CRD from the same set will live: known from the CRD itself, since
    discovery lists a new API only some time after the CRD is Established."""
    spec = crd.obj.get("spec") or {}
    version = doc.obj["apiVersion"].rpartition("/")[2]
    served = [v.get("name") for v in spec.get("versions") or [] if v.get("served")]
    if version not in served:
        raise PlanError(
            api.VALIDATION_FAILED,
            f"{doc.where}: version {version} of {doc.obj['kind']} is not served by the "
            f"CustomResourceDefinition in {crd.where} (served: {', '.join(map(str, served)) or 'none'})",
        )
    names = spec.get("names") or {}
    return kube.Resource(
        spec.get("group", ""), version, doc.obj["kind"], names.get("plural", ""), spec.get("scope") == "Namespaced"
    )


async def _check_namespaces(client: kube.Client, items: list[Item], cache: watchcache.LiveCache | None) -> None:
    """Objects bound for a namespace that the set creates wait for stage 1; others need it to exist."""
    created = {i.obj["metadata"]["name"] for i in items if i.group_kind == ("", "Namespace")}
    wanted = sorted({i.obj["metadata"].get("namespace") for i in items} - {None})

    async def lookup(namespace: str) -> dict[str, Any] | None:
        live = cache.get(watchcache.NAMESPACES, None, namespace) if cache else watchcache.UNKNOWN
        return await client.get(watchcache.NAMESPACES, None, namespace) if live is watchcache.UNKNOWN else live

    found = await bounded(8, (functools.partial(lookup, ns) for ns in wanted))
    for namespace, live in zip(wanted, found, strict=True):
        if isinstance(live, BaseException):
            raise live
        if live is not None:
            continue
        for item in items:
            if item.obj["metadata"].get("namespace") != namespace:
                continue
            if namespace not in created:
                raise PlanError(
                    api.VALIDATION_FAILED,
                    f"{item.doc.where}: namespace {namespace!r} of {item.entry.describe()} does not exist "
                    "and is not part of this Sync",
                    missing_namespace=namespace,
                )
            item.deferred = item.new_namespace = True


CACHE_SYNC_TIMEOUT = 10.0  # seconds to wait for a new kind's watch to list, before GETs instead
Verified = dict[str, tuple[str, str]]  # inventory id -> (desired digest, live content fingerprint)


async def dry_run(
    client: kube.Client,
    items: list[Item],
    *,
    force: bool,
    concurrency: int,
    cache: watchcache.LiveCache | None = None,
    verified: Verified | None = None,
) -> list[Planned]:
    """Plan every item (live object, dry-run result, patch); PlanError listing what failed.

    With a live `cache` (only for the operator's own identity), live objects come from
    it, and an object whose desired digest and live content are as `verified` last time
    is unchanged without asking the server at all."""
    if cache is not None:  # one LIST per kind beats one GET per object
        kinds = {i.resource.api_version + i.resource.plural: i.resource for i in items}
        await cache.wait_synced(list(kinds.values()), timeout=CACHE_SYNC_TIMEOUT)
    plan_one = functools.partial(_plan_one, client, force=force, cache=cache, verified=verified or {})
    return await _each_or_fail(concurrency, plan_one, items)


async def _plan_one(
    client: kube.Client, item: Item, *, force: bool, cache: watchcache.LiveCache | None, verified: Verified
) -> Planned:
    meta = item.obj["metadata"]
    live = watchcache.UNKNOWN
    if cache is not None:
        cache.ensure(item.resource)
        live = cache.get(item.resource, meta.get("namespace"), meta["name"])
    if live is watchcache.UNKNOWN:
        live = await client.get(item.resource, meta.get("namespace"), meta["name"])
    if live is not None and Planned(item, live).left_alone:
        return Planned(item, live)
    last = verified.get(item.entry.id)
    if live is not None and last is not None and last == (item.digest, fingerprint.of(live)):
        metrics.DRY_RUNS_SKIPPED.inc()
        return Planned(item, live, result=live)
    try:
        result = await client.apply(item.resource, item.obj, dry_run=True)
    except kube.ApiError as e:
        if live is not None and _immutable(e) and (force or _force_annotated(item.obj, live)):
            return Planned(item, live, recreate=True)
        raise
    if live is None and (result.get("metadata") or {}).get("resourceVersion"):
        # It exists, without pullsync's labels (the live cache sees labelled objects only).
        live = await client.get(item.resource, meta.get("namespace"), meta["name"])
        if live is not None and Planned(item, live).left_alone:
            return Planned(item, live)
    if live is None:  # a create: what jsonpatch would say, one `add` per field, without its diff
        fields = fingerprint.normalise(result).items()
        patch = [{"op": "add", "path": "/" + k.replace("~", "~0").replace("/", "~1"), "value": v} for k, v in fields]
    else:
        patch = jsonpatch.make_patch(fingerprint.normalise(live), fingerprint.normalise(result)).patch
    return Planned(item, live, result=result, patch=patch)


async def check_claims(planned: list[Planned], *, owner: tuple[str, str], operator: kube.Client) -> None:
    """PlanError if a live object belongs to another Sync that still lists it in its
    inventory: two Syncs must not apply one object (each would relabel it at the other's
    every event). An object left behind with `prune: false` (by a deleted Sync, or one
    whose path or targetNamespace moved on) is taken over."""
    claimed: dict[tuple[str, str], list[Item]] = {}
    for p in planned:
        labels = ((p.live or {}).get("metadata") or {}).get("labels") or {}
        other = (labels.get(api.LABEL_NAMESPACE), labels.get(api.LABEL_NAME))
        if other[0] and other[1] and other != owner:
            claimed.setdefault((str(other[0]), str(other[1])), []).append(p.item)
    conflicts = []
    for (namespace, name), candidates in claimed.items():
        other_sync = await operator.get(kube.SYNCS, namespace, name)
        # Without the group: one object may be served by two (Ingress in extensions and
        # networking.k8s.io on 1.20, Event in core and events.k8s.io).
        listed = {(e.namespace, e.name, e.kind) for e in inventory.load((other_sync or {}).get("status"))}
        taken = [i for i in candidates if (i.entry.namespace, i.entry.name, i.entry.kind) in listed]
        if taken:
            objects = ", ".join(f"{i.entry.describe()} ({i.doc.where})" for i in taken[:5])
            more = f" and {len(taken) - 5} more" if len(taken) > 5 else ""
            conflicts.append(f"{objects}{more}: managed by Sync {namespace}/{name}")
    if conflicts:
        raise PlanError(
            api.VALIDATION_FAILED,
            "; ".join(conflicts) + "; an object belongs to one Sync: remove it from one of them (nothing written)",
        )


async def probe_new_namespaces(client: kube.Client, items: list[Item], *, namespace: str, concurrency: int) -> None:
    """Objects bound for a Namespace the set creates cannot be dry-run before it exists;
    dry-run a copy of each in `namespace` (one that exists) instead, so that an invalid
    object fails the revision before stage 1 writes anything. Refusals that are about the
    stand-in namespace (denied, conflicts) say nothing of the object and are ignored."""
    probes = [i for i in items if i.new_namespace]

    async def probe(item: Item) -> None:
        copy = {**item.obj, "metadata": {**item.obj["metadata"], "namespace": namespace}}
        try:
            await client.apply(item.resource, copy, dry_run=True)
        except kube.ApiError as e:
            if kube.invalid(e):
                raise

    await _each_or_fail(concurrency, probe, probes)


async def _each_or_fail(concurrency: int, check: Callable[[Item], Awaitable[T]], items: list[Item]) -> list[T]:
    """`check` every item, `concurrency` at a time; their results, or one PlanError naming
    all that failed."""
    results = await bounded(concurrency, (functools.partial(check, item) for item in items))
    failures = [(item, error) for item, error in zip(items, results, strict=True) if isinstance(error, BaseException)]
    if failures:
        raise _summarise(failures)
    return results


def _immutable(error: kube.ApiError) -> bool:
    """The API server refused to change a field that is set once (wording varies by kind)."""
    return error.status == 422 and any(w in error.message for w in ("immutable", "may not change once set"))


def _force_annotated(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    for obj in (desired, live):
        if (obj.get("metadata", {}).get("annotations") or {}).get(api.ANNOTATION_FORCE) == "enabled":
            return True
    return False


def _summarise(failures: list[tuple[Item, BaseException]]) -> PlanError:
    """One PlanError for all failures: the first few named, the worst reason chosen."""
    reasons = [describe_failure(item, error) for item, error in failures]
    order = [api.ACCESS_DENIED, api.APPLY_FAILED, api.VALIDATION_FAILED]
    reason = min((r for r, _ in reasons), key=order.index)
    lines = [m for _, m in reasons[:5]]
    if len(reasons) > 5:
        lines.append(f"... and {len(reasons) - 5} more")
    return PlanError(reason, "; ".join(lines), transient=all(kube.transient(e) for _, e in failures))


def redact_secret(message: str, secret: dict[str, Any]) -> str:
    """`message` without the Secret's values: the API server quotes invalid input back."""
    message = redact.values(message, _leaves([secret.get("data"), secret.get("stringData")]), shortest=3)
    message = re.sub(r'Invalid value: "(?:[^"\\]|\\.)*"', "Invalid value: (redacted)", message)
    return re.sub(r"\.\.\.\|.*?\|\.\.\.", "...(redacted)...", message)


def _leaves(value: Any) -> Iterable[str]:
    """Every scalar inside `value`, as text."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield str(value)


def describe_failure(item: Item, error: BaseException) -> tuple[str, str]:
    """(reason, message) for a failed request about `item`; Secret values never shown."""
    what = f"{item.doc.where}: {item.entry.describe()}"
    if not isinstance(error, kube.ApiError):
        return api.APPLY_FAILED, f"{what}: {type(error).__name__}: {error}"
    if isinstance(error, kube.Unreachable):
        return api.APPLY_FAILED, f"{what}: {error.message}"
    message = re.sub(r", bigger context \.\.\.\|.*?\|\.\.\.", "", error.message)  # a dump of our own input
    message = re.sub(rf"^{kube.UNTYPED_APPLY}: |, got \*value\.\w+", "", message)  # Go's words, not the field's
    if item.obj["kind"] == "Secret":
        message = redact_secret(message, item.obj)
    if error.status == 403 and "because it is being terminated" in message:
        namespace = item.obj["metadata"].get("namespace")
        return api.VALIDATION_FAILED, f"{what}: namespace {namespace} is being deleted and takes no new objects"
    if error.status == 403:
        namespace = item.obj["metadata"].get("namespace")
        scope = f" in namespace {namespace}" if namespace else " (cluster scope)"
        return api.ACCESS_DENIED, f"{what}: {error.verb} of {item.obj['kind']}{scope} denied: {message}"
    if _immutable(error):
        return api.APPLY_FAILED, f"{what}: {message} (set spec.force or the pullsync.dev/force: enabled annotation)"
    return api.VALIDATION_FAILED, f"{what}: {message}{_hint(message)}"


def _hint(message: str) -> str:
    """What to change for API server refusals whose wording does not say it."""
    if 'omits key field "protocol"' in message:
        return " (this API server needs `protocol: TCP` (or UDP, SCTP) on every port under server-side apply; add it)"
    if "failed to convert merged object to last applied version" in message:
        return (
            " (server-side apply also converts the object to the CRD version it was last applied at, whose "
            "schema lacks this field: declare the field in that version's schema too)"
        )
    if "cannot be handled as a" in message or re.search(r": expected (numeric|string|bool)", message):
        return (
            " (a field has the wrong type: YAML reads unquoted yes/no/on/off/y/n as booleans "
            "and 0644 or 1e3 as numbers, as kubectl does; quote strings)"
        )
    return ""
