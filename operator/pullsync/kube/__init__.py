"""The one Kubernetes API client of the engine: raw JSON over aiohttp.

It loads credentials the way kubectl does (`kubeconfig`: a kubeconfig, or the pod's
ServiceAccount), keeps one connection pool, and offers exactly the verbs the engine
needs: discovery, get, list, server-side apply (and its dry-run), delete, status
merge-patch, events.
Responses stay plain dicts (the generated models cost more than the requests on hot
paths). `Client.impersonating()` gives a view that acts as another identity while
sharing the pool and the discovery cache, so every Sync can act with its own rights.
"""

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import multidict

from pullsync import __version__, api
from pullsync.api import clock
from pullsync.kube import kubeconfig
from pullsync.runtime import metrics, tokenbucket

REQUEST_TIMEOUT = 30.0
USER_AGENT = f"pullsync/{__version__}"  # the field manager of status writes

JSON = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer of the API server, with its Status object when it sent one.

    `verb` is the Kubernetes verb (get, apply, dry-run apply, delete, ...)."""

    def __init__(self, status: int, body: Mapping[str, Any] | None, *, verb: str, path: str) -> None:
        self.status = status
        self.body = dict(body or {})
        self.reason = str(self.body.get("reason") or "")
        self.verb = verb
        self.path = path
        self.message = str(self.body.get("message") or f"HTTP {status}")
        super().__init__(f"{verb} {path}: {self.message}")


def unavailable(error: BaseException) -> bool:
    """The whole API server is out of reach or refusing everyone for now (no answer, 429,
    503), as opposed to one request failing (a webhook's 500 is about that object)."""
    return isinstance(error, ApiError) and error.status in (0, 429, 503)


UNTYPED_APPLY = "failed to create typed patch object"  # before 1.22, as a 500


def transient(error: BaseException) -> bool:
    """An error that says nothing about the request, only about the server's state right
    now (no answer, throttled, 5xx): worth a retry soon."""
    return isinstance(error, ApiError) and (error.status in (0, 429) or error.status >= 500) and not invalid(error)


def invalid(error: ApiError) -> bool:
    """The server refused what the request says (400, 422), including the 500 with which API
    servers before 1.22 refuse an apply body that does not fit the schema."""
    return error.status in (400, 422) or (error.status == 500 and error.message.startswith(UNTYPED_APPLY))


class Unreachable(ApiError):
    """No answer: the connection failed or the request timed out (status 0)."""

    def __init__(self, error: BaseException, *, verb: str, path: str) -> None:
        detail = "no answer in time" if isinstance(error, TimeoutError) else str(error) or type(error).__name__
        message = f"cannot reach the API server: {detail}"
        super().__init__(0, {"message": message, "reason": "Unreachable"}, verb=verb, path=path)


@dataclasses.dataclass(frozen=True)
class Resource:
    """A discovered API resource: where objects of one kind live."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


class Discovery:
    """Group-version resource lists, cached; a kind not found triggers one refresh."""

    def __init__(self) -> None:
        self._by_gv: dict[str, dict[str, Resource]] = {}
        self._lock = asyncio.Lock()

    async def resolve(self, client: "Client", api_version: str, kind: str) -> Resource | None:
        found = self._by_gv.get(api_version, {}).get(kind)
        if found is not None:
            return found
        async with self._lock:
            self._by_gv[api_version] = await self._fetch(client, api_version)
        return self._by_gv[api_version].get(kind)

    def forget(self, api_version: str) -> None:
        self._by_gv.pop(api_version, None)

    @staticmethod
    async def _fetch(client: "Client", api_version: str) -> dict[str, Resource]:
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        try:
            listing = await client.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return {}
            raise
        result = {}
        for r in listing.get("resources", []):
            if "/" in r["name"]:  # subresources such as deployments/scale
                continue
            result[r["kind"]] = Resource(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
        return result


AuthHeaders = Callable[[], Awaitable[dict[str, str]]]
Forget = Callable[[], bool]  # drop a token the server refused, to fetch it again (False: none)
THROTTLE_RETRIES = 3  # a 429 is retried after its Retry-After this many times


class RateLimiter:
    """Client-side QPS: `qps` requests per second on average, bursts of `burst`; a request
    over the rate waits its turn (one event loop: no lock needed)."""

    def __init__(self, qps: float = 1000.0, burst: int = 2000) -> None:
        self.bucket = tokenbucket.TokenBucket(qps, burst)

    async def acquire(self) -> None:
        delay = self.bucket.take(borrow=True)
        if delay > 0:
            await asyncio.sleep(delay)


def _verb(method: str, params: Mapping[str, str], content_type: str) -> str:
    """The Kubernetes verb of a request, as people read it in RBAC errors and metrics."""
    verb = {"GET": "get", "POST": "create", "DELETE": "delete", "PUT": "update"}.get(method, "patch")
    if verb == "patch" and content_type == "application/apply-patch+yaml":
        verb = "apply"
    return f"dry-run {verb}" if params.get("dryRun") else verb


class Client:
    """An API client; create with `connect()`, close with `close()`."""

    def __init__(
        self,
        *,
        server: str,
        session: aiohttp.ClientSession,
        auth: AuthHeaders,
        discovery: Discovery,
        impersonate: Mapping[str, str] | None = None,
        limiter: "RateLimiter | None" = None,
        watch_session: aiohttp.ClientSession | None = None,
        forget: Forget | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.session = session
        self.watch_session = watch_session or session  # watches hold a connection each
        self.fence: Callable[[], bool] | None = None  # with leader election: whether writes are still allowed
        self._auth = auth
        self._forget = forget
        self.discovery = discovery
        self.impersonation = dict(impersonate or {})
        self.limiter = limiter or RateLimiter()

    @classmethod
    async def connect(cls, path: str | None = None, *, qps: float = 1000.0, burst: int = 2000) -> "Client":
        """Credentials from the kubeconfig at `path` (or $KUBECONFIG / ~/.kube/config), else
        in-cluster (`kubeconfig.load`)."""
        connection = kubeconfig.load(path)
        ssl_arg = connection.ssl_context()
        connector = aiohttp.TCPConnector(ssl=ssl_arg, limit=64)
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        # Watches in a pool of their own, unbounded: however many kinds are watched, they
        # never take the connections that requests need.
        watch_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_arg, limit=0))

        async def auth() -> dict[str, str]:
            return {"Authorization": value} if (value := await connection.authorization()) else {}

        return cls(
            server=connection.server,
            session=session,
            auth=auth,
            discovery=Discovery(),
            limiter=RateLimiter(qps, burst),
            watch_session=watch_session,
            forget=connection.forget,
        )

    async def close(self) -> None:
        await self.session.close()
        if self.watch_session is not self.session:
            await self.watch_session.close()

    def impersonating(self, user: str) -> "Client":
        """A view of this client that acts as `user`."""
        view = Client(
            server=self.server,
            session=self.session,
            auth=self._auth,
            discovery=self.discovery,
            impersonate={"Impersonate-User": user},
            limiter=self.limiter,
            watch_session=self.watch_session,
            forget=self._forget,
        )
        view.fence = self.fence
        return view

    async def _headers(self, content_type: str | None = None, *, verb: str, path: str) -> multidict.CIMultiDict[str]:
        try:
            headers = multidict.CIMultiDict(await self._auth())
        except kubeconfig.ConfigError as e:  # an exec plugin or a token file failed: retried later
            raise ApiError(0, {"message": str(e), "reason": "NoCredentials"}, verb=verb, path=path) from e
        headers["Accept"] = "application/json"
        headers["User-Agent"] = USER_AGENT
        if content_type:
            headers["Content-Type"] = content_type
        if "Impersonate-User" in self.impersonation:
            headers["Impersonate-User"] = str(self.impersonation["Impersonate-User"])
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON; raise ApiError on non-2xx, and
        Unreachable when no answer came."""
        verb = _verb(method, params or {}, content_type)
        if self.fence is not None and method != "GET" and "dryRun" not in (params or {}) and not self.fence():
            raise ApiError(
                503, {"message": "this replica is no longer the leader: it writes nothing"}, verb=verb, path=path
            )
        data = json.dumps(body, separators=(",", ":")) if body is not None else None
        throttled = 0
        refused = False  # a 401 once: the token may have been rotated or revoked
        while True:
            await self.limiter.acquire()
            metrics.API_REQUESTS.labels(verb).inc()
            try:
                async with self.session.request(
                    method,
                    self.server + path,
                    params=params,
                    data=data,
                    headers=await self._headers(content_type if data is not None else None, verb=verb, path=path),
                    timeout=aiohttp.ClientTimeout(total=timeout) if timeout else aiohttp.helpers.sentinel,
                ) as response:
                    text = await response.text()
                    retry_after = response.headers.get("Retry-After", "1")
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as e:
                raise Unreachable(e, verb=verb, path=path) from e
            try:
                payload = json.loads(text) if text else {}
            except json.JSONDecodeError:
                payload = {"message": text.strip()[:500]}
            if status == 429 and throttled < THROTTLE_RETRIES:
                throttled += 1
                metrics.API_THROTTLED.inc()
                await asyncio.sleep(min(float(retry_after) if retry_after.isdigit() else 1.0, 30.0))
                continue
            if status == 401 and not refused and self._forget is not None and self._forget():
                refused = True  # a token file or an exec plugin gives a fresh one: one more try
                continue
            if status >= 400:
                raise ApiError(status, payload, verb=verb, path=path)
            return payload

    @contextlib.asynccontextmanager
    async def stream(self, path: str, *, params: Mapping[str, str]) -> AsyncIterator[AsyncIterator[bytes]]:
        """A watch: one JSON event per line, of any length (aiohttp's own line reader
        refuses lines over 128 KiB, and CRDs and ConfigMaps are often larger)."""
        await self.limiter.acquire()
        metrics.API_REQUESTS.labels("watch").inc()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=float(params.get("timeoutSeconds", 300)) + 30)
        async with self.watch_session.get(
            self.server + path, params=params, headers=await self._headers(verb="watch", path=path), timeout=timeout
        ) as response:
            if response.status >= 400:
                text = await response.text()
                raise ApiError(
                    response.status, json.loads(text) if text.startswith("{") else {}, verb="watch", path=path
                )
            yield _lines(response.content)

    async def resource(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving `kind` in `api_version`, or None if the server has none."""
        return await self.discovery.resolve(self, api_version, kind)

    async def resource_in_group(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving `kind` in `api_version`, or else in any version of its
        group that the server still serves (the preferred one first)."""
        found = await self.resource(api_version, kind)
        group = api_version.rpartition("/")[0]
        if found is not None or not group:
            return found
        try:
            listing = await self.request("GET", f"/apis/{group}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        preferred = (listing.get("preferredVersion") or {}).get("groupVersion")
        versions = [v.get("groupVersion") for v in listing.get("versions") or []]
        for candidate in dict.fromkeys([preferred, *versions]):
            if candidate and candidate != api_version and (found := await self.resource(candidate, kind)):
                return found
        return None

    async def get(self, res: Resource, namespace: str | None, name: str) -> JSON | None:
        try:
            result: JSON = await self.request("GET", res.path(namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return result

    async def list(self, res: Resource, namespace: str | None = None, *, selector: str | None = None) -> JSON:
        params = {"labelSelector": selector} if selector else None
        result: JSON = await self.request("GET", res.path(namespace), params=params)
        return result

    async def apply(self, res: Resource, obj: Mapping[str, Any], *, dry_run: bool = False) -> JSON:
        """Server-side apply as field manager `pullsync`, forcing conflicts."""
        meta = obj["metadata"]
        params = {"fieldManager": api.FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        result: JSON = await self.request(
            "PATCH",
            res.path(meta.get("namespace"), meta["name"]),
            params=params,
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return result

    async def delete(self, res: Resource, namespace: str | None, name: str, *, uid: str | None = None) -> bool:
        """Delete in the background; False when the object was already gone."""
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", res.path(namespace, name), body=body)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def merge_patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> JSON:
        result: JSON = await self.request(
            "PATCH",
            res.path(namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
        )
        return result

    async def patch_status(
        self, res: Resource, namespace: str, name: str, status: Mapping[str, Any], *, previous: Mapping[str, Any]
    ) -> None:
        """Merge-patch `status` unless every field of it already has that value; 404 ignored."""
        if all(previous.get(k) == v for k, v in status.items()):
            return
        try:
            await self.merge_patch(res, namespace, name, {"status": status}, subresource="status")
        except ApiError as e:
            if e.status != 404:  # deleted meanwhile: nothing to report on
                raise

    async def post_event(self, *, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on `involved` (best effort: failures are ignored)."""
        meta = involved["metadata"]
        stamp = clock.now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": "pullsync"},
            "reportingComponent": "pullsync",
        }
        with contextlib.suppress(ApiError):
            await self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)


GITREPOSITORIES = Resource(api.GROUP, api.VERSION, "GitRepository", "gitrepositories", True)
SYNCS = Resource(api.GROUP, api.VERSION, "Sync", "syncs", True)
PREVIEWS = Resource(api.GROUP, api.VERSION, "Preview", "previews", True)
SECRETS = Resource("", "v1", "Secret", "secrets", True)
PODS = Resource("", "v1", "Pod", "pods", True)


async def _lines(body: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The lines of a response body, however long."""
    pending = b""
    async for chunk in body.iter_any():
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            if line:
                yield line
    if pending:
        yield pending
