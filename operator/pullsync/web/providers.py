"""Provider clients: where a Preview publishes a plan (GitHub, Gitea/Forgejo, GitLab, or a
generic JSON receiver), over the operator's one aiohttp session.

`publish` is the one call of the Preview controller. For a forge it sets a commit status on
the planned commit and, when the ref is a pull (merge) request's, keeps ONE comment on it,
found again by its hidden marker (`pullsync.preview.comment.marker`) and edited in place;
an unchanged body is not written again. For `generic` it POSTs the plan as JSON, signed
with `X-Signature: sha256=<hex HMAC of the body>` when a token is set (the scheme of
pullsync's own webhook receiver).

Every failure, HTTP (any non-2xx, redirects included: they are never followed) or network,
is a `PublishError` whose message names the provider, the method and the path, and never
contains the token. The caller checks `Target.address` against the URL policy before
calling: every request goes to that address (plus the forge's API prefix) and nowhere else.
"""

import dataclasses
import hashlib
import hmac
import json
import re
import urllib.parse
from typing import Any

import aiohttp
import yarl

import pullsync
from pullsync.preview import comment
from pullsync.preview import report as reports
from pullsync.runtime import redact

TYPES = ("github", "gitlab", "gitea", "generic")
TIMEOUT = aiohttp.ClientTimeout(total=30)
PER_PAGE = 100  # comments per page when listing (the maximum of GitHub and GitLab)
MAX_PAGES = 100  # 10,000 comments: past that, a pull request gets a new comment
_API_PREFIX = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4", "generic": ""}
_PULL_REF = re.compile(r"refs/(?:pull|merge-requests)/([1-9][0-9]*)/(?:head|merge)")


@dataclasses.dataclass(frozen=True)
class Target:
    """Where to publish. `address`: the API base URL (GitHub `https://api.github.com`, Gitea
    and GitLab the server's URL, their /api/v1 and /api/v4 added here; generic: the URL to
    POST to). `repository`: `org/repo` (GitLab: the project path)."""

    type: str
    address: str
    repository: str
    token: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown provider type {self.type!r}: expected one of {', '.join(TYPES)}")
        if self.type != "generic" and not self.repository.strip("/"):
            raise ValueError(f"a {self.type} provider needs a repository")

    @property
    def base(self) -> str:
        """The URL every request of this target starts with."""
        address = self.address.rstrip("/")
        prefix = _API_PREFIX[self.type]
        return address if address.endswith(prefix) else address + prefix


class PublishError(Exception):
    """A plan could not be published; the message says what failed and how (never the token)."""


def pull_request(ref: str) -> int | None:
    """The pull (merge) request number of `refs/pull/N/head|merge` or
    `refs/merge-requests/N/head|merge`; None for any other ref (then only the status)."""
    match = _PULL_REF.fullmatch(ref)
    return int(match.group(1)) if match else None


def comment_key(target: Target, *, context: str, number: int) -> str:
    """The key of a comment id in `publish`'s `known` cache."""
    return f"{target.type} {target.base} {target.repository}#{number} {context}"


async def publish(
    session: aiohttp.ClientSession,
    target: Target,
    *,
    context: str,
    ref: str,
    commit: str,
    report: reports.Report,
    known: dict[str, int] | None = None,
) -> None:
    """Publish `report`, the plan of `commit` (the head of `ref`): a commit status named
    `context` and, for a pull request, its one comment. `known` caches comment ids between
    calls (keys: `comment_key`) to skip listing the comments; a stale id is forgotten.
    Raises PublishError once both were tried, if either failed."""
    client = _Client(session, target)
    sha = commit.rpartition(":")[2]  # "sha1:<hex>" or "<hex>"
    if target.type == "generic":
        await client.generic(context=context, ref=ref, commit=sha, plan=report)
        return
    failures: list[str] = []
    try:
        await client.status(sha, context=context, plan=report)
    except PublishError as e:
        failures.append(str(e))
    number = pull_request(ref)
    if number is not None:
        body = comment.markdown(report, context=context, commit=sha)
        try:
            await client.upsert_comment(number, context=context, body=body, known=known)
        except PublishError as e:
            failures.append(str(e))
    if failures:
        raise PublishError("; ".join(failures))


class _Client:
    """Requests to one target, with its authentication, and errors as PublishError."""

    def __init__(self, session: aiohttp.ClientSession, target: Target) -> None:
        self.session = session
        self.target = target
        self.headers = {"User-Agent": f"pullsync/{pullsync.__version__}", "Accept": "application/json"}
        token = target.token
        if target.type == "github":
            self.headers["Accept"] = "application/vnd.github+json"
            if token:
                self.headers["Authorization"] = f"Bearer {token}"
        elif target.type == "gitea" and token:
            self.headers["Authorization"] = f"token {token}"
        elif target.type == "gitlab" and token:
            self.headers["PRIVATE-TOKEN"] = token
        if target.type == "gitlab":
            self.repo = "/projects/" + urllib.parse.quote(target.repository.strip("/"), safe="")
        else:
            self.repo = "/repos/" + urllib.parse.quote(target.repository.strip("/"), safe="/")

    # the three things a forge is asked

    async def status(self, sha: str, *, context: str, plan: reports.Report) -> None:
        path = f"{self.repo}/statuses/{urllib.parse.quote(sha, safe='')}"
        description = comment.description(plan)
        if self.target.type == "gitlab":
            state = "success" if plan.ok else "failed"
            await self.call("POST", path, body={"state": state, "name": context, "description": description})
        else:
            body = {"state": comment.state(plan), "description": description, "context": context}
            await self.call("POST", path, body=body)

    async def upsert_comment(self, number: int, *, context: str, body: str, known: dict[str, int] | None) -> None:
        key = comment_key(self.target, context=context, number=number)
        cached = known.get(key) if known is not None else None
        if cached is not None and await self._refresh_known(number, cached, context=context, body=body):
            return
        if known is not None:
            known.pop(key, None)
        found = await self._find(number, context)
        if found is None:
            created = await self.call("POST", self._comments(number), body={"body": body})
            comment_id = _id(created, self._describe("POST", self._comments(number)))
        else:
            comment_id, existing = found
            if not _same(existing, body):
                await self.call(self._edit_method(), self._comment(number, comment_id), body={"body": body})
        if known is not None:
            known[key] = comment_id

    async def generic(self, *, context: str, ref: str, commit: str, plan: reports.Report) -> None:
        payload = {
            "context": context,
            "ref": ref,
            "commit": commit,
            "state": comment.state(plan),
            "description": comment.description(plan),
            "plan": plan.as_json(),
        }
        data = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json"}
        if self.target.token:
            digest = hmac.new(self.target.token.encode(), data, hashlib.sha256).hexdigest()
            headers["X-Signature"] = f"sha256={digest}"
        await self.call("POST", "", data=data, headers=headers)

    # comments

    async def _refresh_known(self, number: int, comment_id: int, *, context: str, body: str) -> bool:
        """Bring the cached comment up to date; False when it is gone (or not ours)."""
        path = self._comment(number, comment_id)
        existing = await self.call("GET", path, missing_ok=True)
        if not isinstance(existing, dict) or not comment.is_ours(str(existing.get("body") or ""), context):
            return False
        if _same(str(existing.get("body") or ""), body):
            return True
        return await self.call(self._edit_method(), path, body={"body": body}, missing_ok=True) is not None

    async def _find(self, number: int, context: str) -> tuple[int, str] | None:
        """(id, body) of the oldest comment with our marker, listing page after page."""
        path = self._comments(number)
        gitea = self.target.type == "gitea"  # Gitea lists all the comments of an issue at once
        for page in range(1, MAX_PAGES + 1):
            query = {} if gitea else {"per_page": str(PER_PAGE), "page": str(page)}
            if self.target.type == "gitlab":
                query |= {"sort": "asc", "order_by": "created_at"}  # GitLab: newest first otherwise
            items = await self.call("GET", path, query=query)
            if not isinstance(items, list):
                raise PublishError(f"{self._describe('GET', path)}: expected a list of comments")
            for item in items:
                if isinstance(item, dict) and comment.is_ours(str(item.get("body") or ""), context):
                    return _id(item, self._describe("GET", path)), str(item.get("body") or "")
            if gitea or len(items) < PER_PAGE:
                break
        return None

    def _comments(self, number: int) -> str:
        if self.target.type == "gitlab":
            return f"{self.repo}/merge_requests/{number}/notes"
        return f"{self.repo}/issues/{number}/comments"

    def _comment(self, number: int, comment_id: int) -> str:
        if self.target.type == "gitlab":
            return f"{self.repo}/merge_requests/{number}/notes/{comment_id}"
        return f"{self.repo}/issues/comments/{comment_id}"

    def _edit_method(self) -> str:
        return "PUT" if self.target.type == "gitlab" else "PATCH"

    # HTTP

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """The decoded JSON answer (None when empty, or for a 404 when `missing_ok`)."""
        url = self.target.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        what = self._describe(method, path)
        try:
            async with self.session.request(
                method,
                yarl.URL(url, encoded=True),
                json=body,
                data=data,
                headers={**self.headers, **(headers or {})},
                timeout=TIMEOUT,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
                if missing_ok and response.status in (404, 410):
                    return None
                if not 200 <= response.status < 300:
                    raise PublishError(self._redact(f"{what}: {response.status} {_reason(response, raw)}"))
        except TimeoutError:
            raise PublishError(f"{what}: no answer within {TIMEOUT.total:.0f}s") from None
        except aiohttp.ClientError as e:
            raise PublishError(self._redact(f"{what}: {type(e).__name__}: {e}")) from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            if self.target.type == "generic":
                return None  # a receiver may answer anything
            raise PublishError(f"{what}: {status} but the answer is not JSON") from None

    def _describe(self, method: str, path: str) -> str:
        shown = yarl.URL(self.target.base + path, encoded=True).raw_path if path else self.target.address
        return self._redact(f"{self.target.type}: {method} {shown}")

    def _redact(self, text: str) -> str:
        secrets = [self.target.token] if self.target.token else []
        return redact.values(redact.urls(text), secrets, shortest=4)


def _reason(response: aiohttp.ClientResponse, raw: bytes) -> str:
    """What the server said: its JSON `message` (or `error`), else the start of its text."""
    text = raw.decode("utf-8", "replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        said = answer.get("message") or answer.get("error") or answer.get("errors")
        if said:
            text = said if isinstance(said, str) else json.dumps(said)
    text = " ".join(text.split())
    if response.status in (301, 302, 303, 307, 308):
        text = f"redirect to {response.headers.get('Location', '?')} (not followed)"
    text = text or (response.reason or "")
    return text if len(text) <= 300 else text[:299] + "…"


def _id(item: Any, what: str) -> int:
    if isinstance(item, dict) and isinstance(item.get("id"), int):
        return int(item["id"])
    raise PublishError(f"{what}: the answer has no comment id")


def _same(existing: str, body: str) -> bool:
    return existing.replace("\r\n", "\n").strip() == body.replace("\r\n", "\n").strip()
