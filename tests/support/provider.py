"""A local fake of the forges a Preview publishes to, for unit and e2e tests.

One HTTP server on loopback answers the REST endpoints pullsync uses, as the real APIs do:
GitHub at the root (`/repos/...`, `Authorization: Bearer <token>`), Gitea under `/api/v1`
(`Authorization: token <token>`, comments listed all at once), GitLab under `/api/v4`
(`PRIVATE-TOKEN`, the project path URL-encoded), and a generic receiver on any other
POST path. A wrong or missing token gets 401 with a JSON `message`. The token's user is
`BOT` (`GET /user`, `/api/v1/user`: `login`; `/api/v4/user`: `username`), or refused with
GitHub's 403 for an App's installation token (`user_refused`). Every call is recorded
(`Call`); comments (ids shared by all forges; authors in `user.login`, GitLab's in
`author.username`) and statuses are kept so that listing, editing and posting behave;
editing somebody else's comment is 403 unless `admin`; `fail_next` makes the next calls
(of one method and path prefix, if given) fail on demand.
"""

import dataclasses
import http.server
import itertools
import json
import re
import threading
import urllib.parse
from typing import Any, Self

BOT = "pullsync-bot"  # the token's user
GITHUB_401 = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
GITHUB_APP_403 = {
    "message": "Resource not accessible by integration",
    "documentation_url": "https://docs.github.com/rest",
}
GITEA_SCOPE_403 = {"message": "token does not have at least one of required scope(s): [read:user]"}


@dataclasses.dataclass(frozen=True)
class Call:
    """One request as the server saw it (`path` raw, without the query; header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body: bytes


@dataclasses.dataclass
class Comment:
    id: int
    repo: str
    pr: int
    body: str
    author: str = BOT


@dataclasses.dataclass
class _Failure:
    status: int
    message: str
    remaining: int
    method: str | None
    path: str

    def matches(self, call: Call) -> bool:
        return (self.method is None or call.method == self.method) and call.path.startswith(self.path)


class FakeProvider:
    """The fake forges; `with FakeProvider(token) as fake:` or `.start()` / `.stop()`."""

    def __init__(
        self,
        token: str = "test-token",
        *,
        github_page_default: int = 30,
        user_refused: bool = False,
        admin: bool = False,
    ) -> None:
        self.token = token
        self.github_page_default = github_page_default
        self.user_refused = user_refused  # `GET /user` answered 403, as to a GitHub App's token
        self.admin = admin  # the token may edit anybody's comment
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._comments: dict[int, Comment] = {}
        self._statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1001)
        self._server: http.server.ThreadingHTTPServer | None = None

    # lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PATCH(self) -> None:
                fake._handle(self)

            def do_PUT(self) -> None:
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # for tests

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, path_prefix: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    def comments(self, repo: str, pr: int) -> list[Comment]:
        """The comments of a pull request, oldest first (copies)."""
        with self._lock:
            return [dataclasses.replace(c) for c in self._comments.values() if c.repo == repo and c.pr == pr]

    def statuses(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """The statuses posted for a commit, in order (the JSON bodies)."""
        with self._lock:
            return list(self._statuses.get((repo, sha), []))

    def add_comment(self, repo: str, pr: int, body: str, *, author: str = "someone") -> int:
        """A comment by somebody else (or a leftover of ours); its id."""
        with self._lock:
            return self._add(repo, pr, body, author)

    def delete_comment(self, comment_id: int) -> None:
        with self._lock:
            del self._comments[comment_id]

    def fail_next(
        self,
        status: int = 500,
        *,
        message: str = "Internal Server Error",
        times: int = 1,
        method: str | None = None,
        path: str = "",
    ) -> None:
        """The next `times` calls (of `method`, to a path starting with `path`; by default any)
        are answered `status` with a JSON `message`."""
        with self._lock:
            self._failures.append(_Failure(status, message, times, method, path))

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    # the server side

    def _add(self, repo: str, pr: int, body: str, author: str) -> int:
        comment_id = next(self._ids)
        self._comments[comment_id] = Comment(comment_id, repo, pr, body, author)
        return comment_id

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        raw_path, _, raw_query = request.path.partition("?")
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        call = Call(
            method=request.command,
            path=raw_path,
            query=dict(urllib.parse.parse_qsl(raw_query)),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=parsed,
            body=body,
        )
        with self._lock:
            self._calls.append(call)
            failure = next((f for f in self._failures if f.matches(call)), None)
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
            status, answer = (failure.status, {"message": failure.message}) if failure else self._route(call)
        data = json.dumps(answer).encode() if answer is not None else b""
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _route(self, call: Call) -> tuple[int, Any]:
        if call.path.startswith("/api/v4/"):
            return self._gitlab(call)
        if call.path.startswith(("/api/v1/repos/", "/api/v1/user")):
            return self._forge(call, "gitea", call.path.removeprefix("/api/v1"))
        if call.path.startswith(("/repos/", "/user")):
            return self._forge(call, "github", call.path)
        if call.method == "POST":  # the generic receiver
            return 200, {"ok": True}
        return 404, {"message": "Not Found"}

    def _forge(self, call: Call, flavour: str, path: str) -> tuple[int, Any]:
        """GitHub and Gitea: the same paths, their own authentication and paging."""
        scheme = "Bearer" if flavour == "github" else "token"
        if call.headers.get("authorization") != f"{scheme} {self.token}":
            message = GITHUB_401 if flavour == "github" else {"message": "user does not exist [uid: 0, name: ]"}
            return 401, message
        if path == "/user":
            if call.method != "GET":
                return 405, {"message": "Method Not Allowed"}
            if self.user_refused:
                return 403, GITHUB_APP_403 if flavour == "github" else GITEA_SCOPE_403
            return 200, {"id": 1, "login": BOT}
        repo_part = r"/repos/(?P<repo>[^/]+/[^/]+)"
        if m := re.fullmatch(repo_part + r"/statuses/(?P<sha>[0-9a-f]+)", path):
            if call.method != "POST":
                return 405, {"message": "Method Not Allowed"}
            repo, sha = urllib.parse.unquote(m["repo"]), m["sha"]
            self._statuses.setdefault((repo, sha), []).append(call.json)
            return 201, {"id": len(self._statuses[(repo, sha)]), **call.json}
        if m := re.fullmatch(repo_part + r"/issues/(?P<pr>[0-9]+)/comments", path):
            repo, pr = urllib.parse.unquote(m["repo"]), int(m["pr"])
            if call.method == "POST":
                return 201, self._as_json(self._comments[self._add(repo, pr, call.json["body"], BOT)], flavour)
            if call.method == "GET":
                ours = [self._as_json(c, flavour) for c in self._comments.values() if c.repo == repo and c.pr == pr]
                if flavour == "gitea":  # all of them, whatever the query says
                    return 200, ours
                return 200, self._page(ours, call.query, self.github_page_default)
        if m := re.fullmatch(repo_part + r"/issues/comments/(?P<id>[0-9]+)", path):
            repo, comment_id = urllib.parse.unquote(m["repo"]), int(m["id"])
            found = self._comments.get(comment_id)
            if found is None or found.repo != repo:
                return 404, {"message": "Not Found"}
            if call.method == "PATCH":
                if found.author != BOT and not self.admin:
                    return 403, {"message": "Must have admin rights to Repository."}
                found.body = call.json["body"]
            elif call.method != "GET":
                return 405, {"message": "Method Not Allowed"}
            return 200, self._as_json(found, flavour)
        return 404, {"message": "Not Found"}

    def _gitlab(self, call: Call) -> tuple[int, Any]:
        if call.headers.get("private-token") != self.token:
            return 401, {"message": "401 Unauthorized"}
        if call.path == "/api/v4/user":
            if call.method != "GET":
                return 405, {"message": "405 Method Not Allowed"}
            if self.user_refused:
                return 403, {"error": "insufficient_scope"}
            return 200, {"id": 1, "username": BOT}
        project = r"/api/v4/projects/(?P<project>[^/]+)"  # org%2Frepo: the path URL-encoded
        m = re.match(project, call.path)
        if m is None or "%2F" not in m["project"]:
            return 404, {"message": "404 Project Not Found"}
        repo, rest = urllib.parse.unquote(m["project"]), call.path[m.end() :]
        if m := re.fullmatch(r"/statuses/(?P<sha>[0-9a-f]+)", rest):
            if call.method != "POST":
                return 405, {"message": "405 Method Not Allowed"}
            if call.json.get("state") not in ("pending", "running", "success", "failed", "canceled"):
                return 400, {"message": "state does not have a valid value"}
            self._statuses.setdefault((repo, m["sha"]), []).append(call.json)
            return 201, {"id": len(self._statuses[(repo, m["sha"])]), **call.json}
        if m := re.fullmatch(r"/merge_requests/(?P<mr>[0-9]+)/notes", rest):
            mr = int(m["mr"])
            if call.method == "POST":
                return 201, self._as_json(self._comments[self._add(repo, mr, call.json["body"], BOT)], "gitlab")
            if call.method == "GET":
                notes = [self._as_json(c, "gitlab") for c in self._comments.values() if c.repo == repo and c.pr == mr]
                if call.query.get("sort") != "asc":
                    notes.reverse()  # GitLab's default: newest first
                return 200, self._page(notes, call.query, 20)
        if m := re.fullmatch(r"/merge_requests/(?P<mr>[0-9]+)/notes/(?P<id>[0-9]+)", rest):
            found = self._comments.get(int(m["id"]))
            if found is None or found.repo != repo or found.pr != int(m["mr"]):
                return 404, {"message": "404 Not found"}
            if call.method == "PUT":
                if found.author != BOT and not self.admin:
                    return 403, {"message": "403 Forbidden"}
                found.body = call.json["body"]
            elif call.method != "GET":
                return 405, {"message": "405 Method Not Allowed"}
            return 200, self._as_json(found, "gitlab")
        return 404, {"message": "404 Not Found"}

    @staticmethod
    def _page(items: list[Any], query: dict[str, str], default: int) -> list[Any]:
        size = min(int(query.get("per_page", default)), 100)
        page = int(query.get("page", 1))
        return items[(page - 1) * size : page * size]

    @staticmethod
    def _as_json(c: Comment, flavour: str) -> dict[str, Any]:
        """As the forge shows a comment: GitHub and Gitea name the author in `user.login`,
        GitLab in `author.username`."""
        if flavour == "gitlab":
            return {"id": c.id, "body": c.body, "author": {"id": 1, "username": c.author}}
        return {"id": c.id, "body": c.body, "user": {"id": 1, "login": c.author}}
