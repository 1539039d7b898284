"""Provider clients: where a Preview publishes a plan (GitHub, Gitea/Forgejo, GitLab, or a
generic JSON receiver), over an aiohttp session the caller passes (the Preview controller
opens one per publish turn and shares it between the plans of that turn).

`publish` is the one call of the Preview controller. For a forge it sets a commit status on
the planned commit and, when the ref is a pull (merge) request's, keeps ONE comment on it,
found again by its hidden marker (`pullsync.preview.comment.marker`) and edited in place;
an unchanged body is not written again. Only a comment written by the token's own user
(`GET /user`) counts as ours, so that nobody takes the comment over by posting the marker
first; when the forge will not say who the token is (a GitHub App's installation token),
the marker alone decides, and a found comment that cannot be edited (403, 404) is left
alone for a new one. For `generic` it POSTs the plan as JSON, signed with
`X-Signature: sha256=<hex HMAC of the body>` when a token is set (the scheme of pullsync's
own webhook receiver).

`parts` says what to attempt ("status", "comment"); a `PublishError` says in `sent` what
did go through, so that a retry attempts only the rest (a forge keeps every status posted).

Every failure, HTTP (any non-2xx, redirects included: they are never followed) or network,
is a `PublishError` whose message names the provider, the method and the path, and never
contains the token. The caller checks `Target.address` against the URL policy before
calling: every request goes to that address (plus the forge's API prefix) and nowhere else.
"""

import contextlib
import dataclasses
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import yarl

import pullsync
from pullsync import api
from pullsync.preview import comment
from pullsync.preview import report as reports
from pullsync.runtime import redact

STATUS, COMMENT = "status", "comment"
PARTS = frozenset({STATUS, COMMENT})
TIMEOUT = aiohttp.ClientTimeout(total=30)
PER_PAGE = 100  # comments per page when listing (the maximum of GitHub and GitLab)
MAX_PAGES = 100  # 10,000 comments: past that, a pull request gets a new comment
MAX_EDITS = 3  # found comments tried (edits refused) before a new comment is posted
_API_PREFIX = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4", "generic": ""}
_PULL_REF = re.compile(r"refs/(?:pull|merge-requests)/([1-9][0-9]*)/(?:head|merge)")
_GONE = (404, 410)
_NOT_EDITABLE = (403, 404, 410)
_USER_REFUSED = (403, 404)  # e.g. a GitHub App token: 403 "Resource not accessible by integration"


@dataclasses.dataclass(frozen=True)
class Target:
    """Where to publish. `address`: the API base URL (GitHub `https://api.github.com`, Gitea
    and GitLab the server's URL, their /api/v1 and /api/v4 added here; generic: the URL to
    POST to). `repository`: `org/repo` (GitLab: the project path). `type`: a key of
    `pullsync.api.PROVIDER_ADDRESSES`."""

    type: str
    address: str
    repository: str
    token: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.type not in api.PROVIDER_ADDRESSES:
            expected = ", ".join(api.PROVIDER_ADDRESSES)
            raise ValueError(f"unknown provider type {self.type!r}: expected one of {expected}")
        if self.type != "generic" and not self.repository.strip("/"):
            raise ValueError(f"a {self.type} provider needs a repository")

    @property
    def base(self) -> str:
        """The URL every request of this target starts with."""
        address = self.address.rstrip("/")
        prefix = _API_PREFIX.get(self.type, "")
        return address if address.endswith(prefix) else address + prefix


class PublishError(Exception):
    """A plan could not be (wholly) published; the message says what failed and how (never the
    token). `sent`: the parts ("status", "comment") that did go through in that call."""

    def __init__(self, message: str, *, sent: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.sent = sent


class _HTTPError(PublishError):
    """A non-2xx answer; `status` lets the client decide to work around it."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def pull_request(ref: str) -> int | None:
    """The pull (merge) request number of `refs/pull/N/head|merge` or
    `refs/merge-requests/N/head|merge`; None for any other ref (then only the status)."""
    match = _PULL_REF.fullmatch(ref)
    return int(match.group(1)) if match else None


def comment_key(target: Target, *, marker: str, number: int) -> str:
    """The key of a comment id in `publish`'s `known` cache."""
    return f"{target.type} {target.base} {target.repository}#{number} {marker}"


def user_key(target: Target) -> str:
    """The key of the token's login in `publish`'s `known` cache (None there: the forge
    refused to say). It changes with the token (a digest of it, never the token itself)."""
    digest = hashlib.sha256((target.token or "").encode()).hexdigest()[:16]
    return f"{target.type} {target.base} user {digest}"


async def publish(
    session: aiohttp.ClientSession,
    target: Target,
    *,
    context: str,
    ref: str,
    commit: str,
    report: reports.Report,
    known: dict[str, Any] | None = None,
    parts: frozenset[str] = PARTS,
    marker: str | None = None,
) -> None:
    """Publish `report`, the plan of `commit` (the head of `ref`): the `parts` asked for, of
    a commit status named `context` and, for a pull request, its one comment, found by
    `marker` (default: `context`; one per Preview when several share a context). For
    `generic`, "status" is the POST and "comment" means nothing.

    `known` (one dict per Preview, kept by the caller) caches between calls the comment ids
    (keys: `comment_key`) and the token's login (`user_key`), to skip listing the comments
    and asking who the token is; a stale id is replaced.

    Raises PublishError once every part asked for was tried, if any failed; its `sent` holds
    the parts that went through (retry with `parts - e.sent`)."""
    unknown = parts - PARTS
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}: expected a subset of {sorted(PARTS)}")
    marker = context if marker is None else marker
    if not marker:
        raise ValueError("the comment marker is empty")
    client = _Client(session, target)
    sha = commit.rpartition(":")[2]  # "sha1:<hex>" or "<hex>"
    if target.type == "generic":
        if STATUS in parts:
            await client.generic(context=context, ref=ref, commit=sha, plan=report)
        return
    sent: set[str] = set()
    failures: list[str] = []
    if STATUS in parts:
        try:
            await client.status(sha, context=context, plan=report)
            sent.add(STATUS)
        except PublishError as e:
            failures.append(str(e))
    number = pull_request(ref)
    if COMMENT in parts and number is not None:
        body = comment.markdown(report, context=context, commit=sha, marker=marker)
        try:
            await client.upsert_comment(number, marker=marker, body=body, known=known)
            sent.add(COMMENT)
        except PublishError as e:
            failures.append(str(e))
    if failures:
        raise PublishError("; ".join(failures), sent=frozenset(sent))


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

    async def upsert_comment(self, number: int, *, marker: str, body: str, known: dict[str, Any] | None) -> None:
        """Edit our comment with `marker` (the cached one, else the oldest found) to `body`,
        or post it; a found comment that may not be edited is passed over."""
        key = comment_key(self.target, marker=marker, number=number)
        cached = known.get(key) if known is not None else None
        login = await self._login(known)
        comment_id: int | None = None
        edits = 0
        candidates = self._candidates(number, marker, login, cached if isinstance(cached, int) else None)
        async with contextlib.aclosing(candidates):
            async for found, existing in candidates:
                if _same(existing, body) or await self._edit(number, found, body):
                    comment_id = found
                    break
                edits += 1
                if edits >= MAX_EDITS:
                    break
        if comment_id is None:
            created = await self.call("POST", self._comments(number), body={"body": body})
            comment_id = _id(created, self._describe("POST", self._comments(number)))
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

    async def _login(self, known: dict[str, Any] | None) -> str | None:
        """The login of the token's user; None when the forge refuses to say (the marker alone
        decides then). Cached in `known`."""
        key = user_key(self.target)
        if known is not None and key in known:
            cached = known[key]
            return cached if isinstance(cached, str) else None
        field = "username" if self.target.type == "gitlab" else "login"
        try:
            user = await self.call("GET", "/user")
        except _HTTPError as e:
            if e.status not in _USER_REFUSED:
                raise
            login = None
        else:
            said = user.get(field) if isinstance(user, dict) else None
            if not isinstance(said, str) or not said:
                raise PublishError(f"{self._describe('GET', '/user')}: the answer has no {field}")
            login = said
        if known is not None:
            known[key] = login
        return login

    async def _candidates(
        self, number: int, marker: str, login: str | None, cached: int | None
    ) -> AsyncGenerator[tuple[int, str], None]:
        """(id, body) of our comments with `marker`: the cached one if it still is, then the
        others oldest first, listing page after page."""
        if cached is not None:
            item = await self.call("GET", self._comment(number, cached), missing_ok=True)
            if self._ours(item, marker, login):
                yield cached, str(item.get("body") or "")
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
                if self._ours(item, marker, login):
                    found = _id(item, self._describe("GET", path))
                    if found != cached:
                        yield found, str(item.get("body") or "")
            if gitea or len(items) < PER_PAGE:
                break

    def _ours(self, item: Any, marker: str, login: str | None) -> bool:
        """True for a comment with our marker, written by the token's user when it is known."""
        if not isinstance(item, dict) or not comment.is_ours(str(item.get("body") or ""), marker):
            return False
        if login is None:
            return True
        author = item.get("author" if self.target.type == "gitlab" else "user")
        name = author.get("username" if self.target.type == "gitlab" else "login") if isinstance(author, dict) else None
        return isinstance(name, str) and name.casefold() == login.casefold()

    async def _edit(self, number: int, comment_id: int, body: str) -> bool:
        """Write `body` into the comment; False when it may not be (403) or is gone (404, 410)."""
        method = "PUT" if self.target.type == "gitlab" else "PATCH"
        try:
            await self.call(method, self._comment(number, comment_id), body={"body": body})
        except _HTTPError as e:
            if e.status in _NOT_EDITABLE:
                return False
            raise
        return True

    def _comments(self, number: int) -> str:
        if self.target.type == "gitlab":
            return f"{self.repo}/merge_requests/{number}/notes"
        return f"{self.repo}/issues/{number}/comments"

    def _comment(self, number: int, comment_id: int) -> str:
        if self.target.type == "gitlab":
            return f"{self.repo}/merge_requests/{number}/notes/{comment_id}"
        return f"{self.repo}/issues/comments/{comment_id}"

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
        """The decoded JSON answer (None when empty, or for a 404 or 410 when `missing_ok`)."""
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
                if missing_ok and status in _GONE:
                    return None
                if not 200 <= status < 300:
                    raise _HTTPError(self._redact(f"{what}: {status} {_reason(response, raw)}"), status=status)
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
