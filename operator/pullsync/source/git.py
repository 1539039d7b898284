"""Git source: read remote refs cheaply, resolve a ref, shallow-fetch into a bare cache.

Every function here blocks (pygit2); callers run them in a thread. One bare repository
per URL is shared by every GitRepository that names that URL; a thread lock per URL
keeps fetches into it serial. A poll costs one ref listing; a fetch (depth 1) happens
only when the resolved commit is not in the cache yet. Each fetch adds a pack and a pin;
once a repository holds too many packs, it is compacted to one pack of the commits still
in use (`Cache.compact`), so the cache stays bounded and lookups stay fast.
"""

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pygit2

from pullsync import api
from pullsync.source import knownhosts, semver, urlpolicy
from pullsync.source.gitauth import Callbacks, Credentials, GitFailure, classify, redact_url

# libgit2's own socket timeouts (ms), process-wide; the per-operation deadline is ours.
pygit2.settings.server_connect_timeout = 15_000
pygit2.settings.server_timeout = 30_000

log = logging.getLogger("pullsync.git")

PINNED = "refs/pullsync/pinned/"  # one ref per fetched commit, so that nothing else removes it
MAX_PACKS = 16  # more packs than this in a repository (one per fetch): compact it
# A commit fetched or looked up this recently is in use: a render or a preview of it may be
# under way (what the published artifacts name is kept whenever it was fetched).
KEEP_SECONDS = 3600.0

_ssh_lock = threading.Lock()  # libgit2 reads known_hosts from a process-wide home dir
_trusted_cas: set[str] = set()
_ca_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A ref resolved against the remote: `name` for display, `refname` to fetch."""

    name: str  # the commit itself for a commit pinned alone
    refname: str | None  # None for a pinned commit
    commit: str

    @property
    def revision(self) -> str:
        return f"{self.name}@sha1:{self.commit}" if self.name != self.commit else f"sha1:{self.commit}"

    @property
    def short_revision(self) -> str:
        return f"{self.name}@{self.commit[:12]}" if self.name != self.commit else self.commit[:12]


def ssh_address(url: str) -> tuple[str, int]:
    """The host of an SSH URL as it is spelled (libssh2 compares names case by case) and
    its port (22 unless an ssh:// URL says)."""
    if "://" not in url:  # scp-like: user@host:path
        return url.partition("@")[2].partition(":")[0], 22
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = netloc.partition(":")
    return host, int(port) if port.isdigit() else 22


def is_ssh(url: str) -> bool:
    """ssh:// or scp-like user@host:path."""
    return url.startswith("ssh://") or ("://" not in url and "@" in url.split(":", 1)[0] and ":" in url)


class Cache:
    """Bare repositories under `root`, one per URL, counted by their users; a repository
    with more than `max_packs` packs is compacted to the commits in use (`_compact`)."""

    def __init__(
        self,
        root: Path,
        *,
        max_fetch_bytes: int = 512 * 1024 * 1024,
        max_packs: int = MAX_PACKS,
        keep_seconds: float = KEEP_SECONDS,
        in_use: Callable[[str], set[str]] = lambda url: set(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.max_fetch_bytes = max_fetch_bytes
        self.max_packs = max_packs
        self.keep_seconds = keep_seconds
        self.in_use = in_use  # url -> the commits the published artifacts name (`Bus.commits`)
        self.clock = clock
        self._started = clock()
        self._users: dict[str, set[str]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._used: dict[str, dict[str, float]] = {}  # url -> commit -> when last fetched or looked up
        self._used_lock = threading.Lock()  # held briefly: has_commit runs on the event loop
        self._compacting: dict[str, threading.Lock] = {}  # one compaction per URL at a time

    def path(self, url: str) -> Path:
        return self.root / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")

    def acquire(self, url: str, user: str) -> None:
        self._users.setdefault(url, set()).add(user)

    def release(self, url: str, user: str) -> None:
        """Forget `user`; the repository goes when nobody uses its URL any more."""
        users = self._users.get(url, set())
        users.discard(user)
        if not users:
            self._users.pop(url, None)
            with self._used_lock:
                self._used.pop(url, None)
            shutil.rmtree(self.path(url), ignore_errors=True)

    def _repo(self, url: str) -> pygit2.Repository:
        path = self.path(url)
        if not (path / "HEAD").exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            return pygit2.init_repository(str(path), bare=True)
        return pygit2.Repository(str(path))

    @contextlib.contextmanager
    def _remote(
        self, url: str, creds: Credentials | None, timeout: float
    ) -> Iterator[tuple[pygit2.Repository, pygit2.Remote, Callbacks]]:
        ssh = is_ssh(url)
        if ssh and not (creds and creds.known_hosts):
            raise GitFailure("hostkey", "SSH needs known_hosts in the secretRef Secret: host keys are always verified")
        lock = self._locks.setdefault(url, threading.Lock())
        with lock, _ssh_lock if ssh else contextlib.nullcontext():
            repo = self._repo(url)
            if creds is not None and creds.ca_cert:
                self._trust(creds.ca_cert)
            host = urlpolicy.split(url)[1]
            spelled, port = ssh_address(url) if ssh else (host, 0)
            callbacks = Callbacks(
                creds,
                time.monotonic() + timeout,
                ssh=ssh,
                max_bytes=self.max_fetch_bytes,
                host=host,
                where=knownhosts.name(spelled, port) if ssh else host,
            )
            if ssh:
                assert creds is not None
                assert creds.known_hosts is not None
                try:
                    known = knownhosts.entries_for(creds.known_hosts, spelled, port)
                except ValueError as e:
                    keyscan = f"ssh-keyscan {'' if port == 22 else f'-p {port} '}{spelled}"
                    raise GitFailure(
                        "hostkey",
                        f"known_hosts in the secretRef Secret {e} "
                        f"(`{keyscan}` prints the host's keys: check them before you trust them)",
                    ) from None
                home = self.root / ".ssh-home"
                (home / ".ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
                (home / ".ssh" / "known_hosts").write_text(known)
                pygit2.settings.homedir = str(home)
            try:
                yield repo, repo.remotes.create_anonymous(url), callbacks
            except (pygit2.GitError, GitFailure, OSError) as e:  # anything else is a bug, raised as it is
                raise classify(e, creds) from None

    def _trust(self, ca_pem: str) -> None:
        """Add a CA to libgit2's TLS trust store (one per process, so it is shared; see docs)."""
        digest = hashlib.sha256(ca_pem.encode()).hexdigest()
        with _ca_lock:
            if digest in _trusted_cas:
                return
            path = self.root / ".ca" / f"{digest[:24]}.crt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(ca_pem)
            pygit2.settings.set_ssl_cert_locations(str(path), None)
            _trusted_cas.add(digest)

    def list_refs(self, url: str, creds: Credentials | None, timeout: float) -> dict[str, str]:
        """Remote refs by name (peeled tags as `refs/tags/x^{}`), plus `HEAD -> refs/heads/...`."""
        with self._remote(url, creds, timeout) as (_, remote, callbacks):
            heads = remote.list_heads(callbacks=callbacks)
        refs: dict[str, str] = {}
        for head in heads:
            refs[str(head.name)] = str(head.oid)
            if head.name == "HEAD" and head.symref_target is not None:
                refs["HEAD->"] = head.symref_target
        return refs

    def has_commit(self, url: str, commit: str) -> bool:
        """Whether `commit` is cached; asking marks it in use (before looking: see `_compact`)."""
        path = self.path(url)
        if not (path / "HEAD").exists():
            return False
        self.used(url, commit)
        try:
            return isinstance(pygit2.Repository(str(path)).get(commit), pygit2.Commit)
        except (pygit2.GitError, ValueError):
            return False

    def fetch(self, url: str, creds: Credentials | None, resolved: Resolved, timeout: float) -> None:
        """Bring `resolved.commit` into the cache, shallow when the server allows it."""
        with self._remote(url, creds, timeout) as (repo, remote, callbacks):
            if resolved.refname:
                local = "refs/pullsync/" + resolved.refname.removeprefix("refs/")
                remote.fetch([f"+{resolved.refname}:{local}"], callbacks=callbacks, depth=1)
            else:
                try:
                    remote.fetch([resolved.commit], callbacks=callbacks, depth=1)
                except pygit2.GitError:
                    # Servers that refuse a want for a bare SHA: fetch the history and look.
                    callbacks.auth_attempts = 0
                    remote.fetch(["+refs/heads/*:refs/pullsync/heads/*"], callbacks=callbacks)
            if not isinstance(repo.get(resolved.commit), pygit2.Commit):
                raise GitFailure("ref", f"commit {resolved.commit} not found in the repository")
            repo.references.create(PINNED + resolved.commit, resolved.commit, force=True)
            self.used(url, resolved.commit)

    def compact(self, url: str) -> None:
        """Once the repository of `url` holds more than `max_packs` packs (a fetch adds one),
        rewrite it as one pack of the commits in use and drop the rest (`_compact`). A
        failure only warns: each step leaves a usable repository, and the next call tries again."""
        compacting = self._compacting.setdefault(url, threading.Lock())
        if _packs(self.path(url)) <= self.max_packs or not compacting.acquire(blocking=False):
            return
        try:
            self._compact(url)
        except (pygit2.GitError, OSError, KeyError, ValueError) as e:  # the poll that asked goes on
            log.warning("cannot compact the git cache of %s: %s", redact_url(url), e)
        finally:
            compacting.release()

    def used(self, url: str, commit: str) -> None:
        """Mark `commit` in use now: compaction keeps it for `keep_seconds` more."""
        with self._used_lock:
            self._used.setdefault(url, {})[commit] = self.clock()

    def _compact(self, url: str) -> None:
        """Rewrite the repository as one pack of the commits in use (`_keep`); drop the rest.

        The packing runs without the URL's lock (fetches and ref listings go on); the rest
        takes it. Old packs and loose objects go only once the new pack is in place: a
        reader that has them open keeps reading them (an unlinked file lives on), and one
        that misses an object re-scans the packs and finds it in the new one."""
        started, since = time.monotonic(), self.clock()
        path = self.path(url)
        repo = pygit2.Repository(str(path))
        old = sorted((path / "objects" / "pack").glob("pack-*.pack"))
        loose = [f for f in (path / "objects").glob("[0-9a-f][0-9a-f]/*") if f.is_file()]
        names = set(repo.references)  # a ref that a fetch makes meanwhile stays
        kept, refs = self._keep(url, repo)
        new = _write_pack(repo, path, kept | set(refs.values()))
        # A fetch or a has_commit marks its commit before it looks: what either found stays.
        with self._locks.setdefault(url, threading.Lock()), self._used_lock:
            used = self._used.get(url, {})
            if any(t >= since and c not in kept and _commit(repo, c) for c, t in used.items()):
                return  # found or fetched while packing: keep everything, compact next time
            for name in names - refs.keys():  # before any object goes: no ref dangles
                repo.references.delete(name)
            _write_shallow(path, kept)
            for pack in old:
                if pack.stem != new:  # the index first: readers find packs by their index
                    for suffix in (".idx", ".pack", ".rev", ".keep"):
                        pack.with_suffix(suffix).unlink(missing_ok=True)
            for f in loose:
                f.unlink(missing_ok=True)
        log.info(
            "compacted the git cache of %s: %d packs to 1, %d commits kept, in %.2fs",
            redact_url(url),
            len(old),
            len(kept),
            time.monotonic() - started,
        )

    def _keep(self, url: str, repo: pygit2.Repository) -> tuple[set[str], dict[str, str]]:
        """The commits to keep, and the refs to keep (name: the object it points at).

        Kept: the commits the published artifacts name (`in_use`: what the Syncs render, a
        suspended GitRepository's too); every commit fetched or looked up in the last
        `keep_seconds` (the one just fetched, a render or a preview under way) and, in the first
        `keep_seconds` after a start (uses before it are not known), every commit a ref
        names. A ref whose commit is not kept goes."""
        now = self.clock()
        with self._used_lock:
            used = self._used.setdefault(url, {})
            for commit in [c for c, t in used.items() if now - t >= self.keep_seconds]:
                del used[commit]
            wanted = set(used) | self.in_use(url)
        commits = {name: _commit(repo, name) for name in repo.references}
        if now - self._started < self.keep_seconds:
            wanted |= {c for c in commits.values() if c}
        kept = {c for c in (_commit(repo, w) for w in wanted) if c}
        refs = {name: str(repo.references[name].resolve().target) for name, c in commits.items() if c in kept}
        return kept, refs

    def message(self, url: str, commit: str) -> str:
        """The first line of the commit message."""
        obj = pygit2.Repository(str(self.path(url))).get(commit)
        text = str(obj.message).strip() if isinstance(obj, pygit2.Commit) else ""
        return text.splitlines()[0] if text else ""


def _packs(path: Path) -> int:
    return sum(1 for _ in (path / "objects" / "pack").glob("pack-*.pack"))


def _commit(repo: pygit2.Repository, name: str) -> str | None:
    """The full id of the commit that a ref (through tags) or a commit id names, or None."""
    try:
        ref = repo.references.get(name) if name.startswith("refs/") else None
        obj = ref.peel(pygit2.Commit) if ref is not None else repo.get(name)
    except (pygit2.GitError, KeyError, ValueError):
        return None
    return str(obj.id) if isinstance(obj, pygit2.Commit) else None


def _write_shallow(path: Path, commits: set[str]) -> None:
    """List `commits` as shallow: their parents are not in the repository (libgit2 needs that)."""
    tmp = path / "shallow.compacting"
    tmp.write_text("".join(f"{c}\n" for c in sorted(commits)))
    tmp.replace(path / "shallow")


def _write_pack(repo: pygit2.Repository, path: Path, roots: set[str]) -> str:
    """Pack `roots` (each with its tree, a tag with its target) into objects/pack; its name."""
    tmp = path / "compacting"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    builder = pygit2.PackBuilder(repo)
    for oid in sorted(roots):
        builder.add_recur(pygit2.Oid(hex=oid))
    builder.write(tmp)
    pack = next(tmp.glob("pack-*.pack"))
    os.replace(pack, path / "objects" / "pack" / pack.name)
    for f in tmp.iterdir():  # the index after the pack: readers find packs by their index
        os.replace(f, path / "objects" / "pack" / f.name)
    tmp.rmdir()
    return pack.stem


def resolve(refs: dict[str, str], ref: api.GitRef) -> Resolved:
    """Pick the commit the GitRepository follows from the remote's refs (pure): `commit`
    wins over `semver`, `semver` over `tag`, `tag` over `branch`; a commit pinned with a
    branch is named after the branch (`main@sha1:...`), as Flux names it."""
    if ref.commit:
        return Resolved(ref.branch or ref.commit, None, ref.commit)
    if ref.semver:
        tags = [
            name.removeprefix("refs/tags/")
            for name in refs
            if name.startswith("refs/tags/") and not name.endswith("^{}")
        ]
        tag = semver.newest(tags, ref.semver)  # a valid range: the poller checked it first
        if tag is None:
            raise GitFailure("ref", f"no tag matches semver range {ref.semver!r}")
        return _tag(refs, tag)
    if ref.tag:
        if f"refs/tags/{ref.tag}" not in refs:
            raise GitFailure("ref", f"tag {ref.tag!r} not found on the remote")
        return _tag(refs, ref.tag)
    branch = ref.branch
    if branch is None:
        target = refs.get("HEAD->")
        if target is None:
            head = refs.get("HEAD")
            candidates = sorted(n for n, oid in refs.items() if n.startswith("refs/heads/") and oid == head)
            target = candidates[0] if candidates else None
        if target is None:
            raise GitFailure("ref", "the remote has no HEAD branch; set spec.ref.branch")
        branch = target.removeprefix("refs/heads/")
    refname = f"refs/heads/{branch}"
    if refname not in refs:
        raise GitFailure("ref", f"branch {branch!r} not found on the remote")
    return Resolved(branch, refname, refs[refname])


def _tag(refs: dict[str, str], tag: str) -> Resolved:
    refname = f"refs/tags/{tag}"
    return Resolved(tag, refname, refs.get(refname + "^{}", refs[refname]))
