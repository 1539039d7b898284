"""The git cache stays bounded: packs are consolidated and unused commits go (git.Cache).

Each test writes commits straight into a bare repository served by `git http-backend`
(shallow fetches need a smart transport), and polls it as a GitRepository does.
"""

import itertools
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from pullsync import api
from pullsync.source import git
from pullsync.source.gitauth import Credentials
from support.git import HttpGitServer

SIGNATURE = pygit2.Signature("Test", "test@example.com")
names = itertools.count()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A bare repository on the test git server, written with pygit2 (no working copy)."""

    def __init__(self, server: HttpGitServer) -> None:
        name = f"cache-{next(names)}"
        self.repo = pygit2.init_repository(str(server.root / f"{name}.git"), bare=True)
        self.repo.config["uploadpack.allowAnySHA1InWant"] = True
        self.url = server.url(name)
        self.creds = Credentials(username=server.username, password=server.password)
        self.files = {f"app/cm-{i}.yaml": f"kind: ConfigMap\nmetadata: {{name: cm-{i}}}\n" for i in range(10)}

    def commit(self, changes: dict[str, str], branch: str = "main") -> str:
        """Apply `changes` to the files, commit the whole tree on `branch`; the commit id."""
        self.files.update(changes)
        app = self.repo.TreeBuilder()
        for path, text in sorted(self.files.items()):
            app.insert(path.split("/")[1], self.repo.create_blob(text.encode()), pygit2.GIT_FILEMODE_BLOB)
        top = self.repo.TreeBuilder()
        top.insert("app", app.write(), pygit2.GIT_FILEMODE_TREE)
        ref = f"refs/heads/{branch}"
        parents = [self.repo.references[ref].target] if ref in self.repo.references else []
        return str(self.repo.create_commit(ref, SIGNATURE, SIGNATURE, "change", top.write(), parents))


def poll(cache: git.Cache, source: Source, ref: api.GitRef | None = None) -> str:
    """One poll as the GitRepository loop makes it: list, resolve, look up, fetch if new
    (and then compact)."""
    resolved = git.resolve(cache.list_refs(source.url, source.creds, 30), ref or api.GitRef(branch="main"))
    if not cache.has_commit(source.url, resolved.commit):
        cache.fetch(source.url, source.creds, resolved, 30)
        cache.compact(source.url)
    return resolved.commit


def packs(cache: git.Cache, source: Source) -> set[str]:
    return {p.name for p in (cache.path(source.url) / "objects" / "pack").glob("pack-*.pack")}


def pinned(cache: git.Cache, source: Source) -> set[str]:
    refs = pygit2.Repository(str(cache.path(source.url))).references
    return {name.removeprefix(git.PINNED) for name in refs if name.startswith(git.PINNED)}


def blobs(repo: pygit2.Repository, commit: str) -> dict[str, bytes]:
    """Every file of the commit's tree, read from `repo`."""
    found: dict[str, bytes] = {}

    def walk(tree: pygit2.Tree, prefix: str) -> None:
        for entry in tree:
            obj = repo[entry.id]
            if isinstance(obj, pygit2.Tree):
                walk(obj, f"{prefix}{entry.name}/")
            else:
                assert isinstance(obj, pygit2.Blob)
                found[f"{prefix}{entry.name}"] = obj.data

    walk(repo[commit].peel(pygit2.Commit).tree, "")
    return found


def expected(source: Source, commit: str) -> dict[str, bytes]:
    return blobs(source.repo, commit)


@pytest.fixture
def source(git_http: HttpGitServer) -> Source:
    return Source(git_http)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(tmp_path: Path, clock: Clock) -> git.Cache:
    cache = git.Cache(tmp_path / "cache", max_packs=4, keep_seconds=100, clock=clock)
    clock.now += 1000  # past the first keep_seconds after the start, when every pin stays
    return cache


def change(cache: git.Cache, source: Source) -> str:
    """Commit a change to one file on main and poll: the new commit, now in the cache."""
    n = next(names)
    commit = source.commit({f"app/cm-{n % 10}.yaml": f"kind: ConfigMap\nmetadata: {{name: v{n}}}\n"})
    assert poll(cache, source) == commit
    return commit


def busy(cache: git.Cache, source: Source, clock: Clock, commits: int, step: float = 60) -> list[str]:
    """`commits` changes, `step` seconds apart; the commits, oldest first."""
    made = []
    for _ in range(commits):
        clock.now += step
        made.append(change(cache, source))
        assert len(packs(cache, source)) <= cache.max_packs
    return made


def test_many_fetches_leave_few_packs_and_only_the_commits_in_use(
    cache: git.Cache, source: Source, clock: Clock
) -> None:
    made = busy(cache, source, clock, 13)  # a pack per fetch: compacted at the 5th, 9th and 13th
    repo = pygit2.Repository(str(cache.path(source.url)))
    # 60 s apart, kept for 100 s: the last two commits stay, with their pins; the rest went.
    assert len(packs(cache, source)) == 1
    assert pinned(cache, source) == set(made[-2:])
    assert [cache.has_commit(source.url, c) for c in made] == [False] * 11 + [True] * 2
    for commit in made[-2:]:
        assert blobs(repo, commit) == expected(source, commit)
    assert set((cache.path(source.url) / "shallow").read_text().split()) == set(made[-2:])
    assert not list((cache.path(source.url) / "objects").glob("[0-9a-f][0-9a-f]/*"))


def test_a_dropped_commit_can_be_fetched_again(cache: git.Cache, source: Source, clock: Clock) -> None:
    made = busy(cache, source, clock, 5)
    assert not cache.has_commit(source.url, made[0])
    assert poll(cache, source, api.GitRef(commit=made[0])) == made[0]
    assert cache.has_commit(source.url, made[0])
    repo = pygit2.Repository(str(cache.path(source.url)))
    assert blobs(repo, made[0]) == expected(source, made[0])
    assert made[0] in pinned(cache, source)


def test_a_commit_a_poller_still_looks_up_is_kept(cache: git.Cache, source: Source, clock: Clock) -> None:
    followed = busy(cache, source, clock, 1)[0]  # what a slower GitRepository still follows
    for _ in range(3):
        busy(cache, source, clock, 4, step=20)  # five packs: compacted each time round
        assert cache.has_commit(source.url, followed)  # its poll, within keep_seconds
    clock.now += 200
    busy(cache, source, clock, 4)
    assert not cache.has_commit(source.url, followed)


def test_the_commits_published_artifacts_name_are_kept(tmp_path: Path, source: Source, clock: Clock) -> None:
    published: set[str] = set()  # what Bus.commits says: a suspended GitRepository's artifact
    cache = git.Cache(tmp_path / "cache", max_packs=4, keep_seconds=100, in_use=lambda url: published, clock=clock)
    clock.now += 1000
    release = source.commit({"app/cm-0.yaml": "kind: ConfigMap\nmetadata: {name: v1}\n"}, branch="release")
    source.repo.create_tag("v1", pygit2.Oid(hex=release), pygit2.enums.ObjectType.COMMIT, SIGNATURE, "v1")
    assert poll(cache, source, api.GitRef(tag="v1")) == release
    published.add(release)
    clock.now += 1000  # nobody looks it up any more: its GitRepository is suspended
    made = busy(cache, source, clock, 5)  # compacted at the fourth (five packs)
    assert [cache.has_commit(source.url, c) for c in made] == [False] * 2 + [True] * 3
    repo = pygit2.Repository(str(cache.path(source.url)))
    assert blobs(repo, release) == expected(source, release)
    assert release in pinned(cache, source)
    tag = repo.references["refs/pullsync/tags/v1"]
    assert isinstance(repo[tag.target], pygit2.Tag)
    assert str(tag.peel(pygit2.Commit).id) == release
    published.clear()  # its artifact moved on: the next compaction drops it, and its refs
    clock.now += 1000
    busy(cache, source, clock, 5)
    assert not cache.has_commit(source.url, release)
    assert "refs/pullsync/tags/v1" not in pygit2.Repository(str(cache.path(source.url))).references


def test_after_a_start_every_pinned_commit_stays_for_keep_seconds(
    cache: git.Cache, source: Source, clock: Clock, tmp_path: Path
) -> None:
    old = busy(cache, source, clock, 3)  # no compaction yet
    clock.now += 500
    restarted = git.Cache(tmp_path / "cache", max_packs=4, keep_seconds=100, clock=clock)  # knows no use
    busy(restarted, source, clock, 2, step=10)  # five packs: compacted, 20 s after the start
    assert [restarted.has_commit(source.url, c) for c in old] == [True] * 3
    clock.now += 200
    busy(restarted, source, clock, 4)
    assert [restarted.has_commit(source.url, c) for c in old] == [False] * 3


def test_a_reader_opened_before_compaction_still_reads_a_kept_commit(
    cache: git.Cache, source: Source, clock: Clock
) -> None:
    # Each commit brings one new file, so the last commit's files lie in four packs.
    made = []
    for i in range(4):
        clock.now += 10
        made.append(source.commit({f"app/new-{i}.yaml": f"kind: ConfigMap\nmetadata: {{name: new-{i}}}\n"}))
        poll(cache, source)
    before = packs(cache, source)
    assert len(before) == 4
    reader = pygit2.Repository(str(cache.path(source.url)))  # a render of made[-1], under way
    app = reader[reader[made[-1]].peel(pygit2.Commit).tree["app"].id]
    assert isinstance(app, pygit2.Tree)
    assert reader[app["cm-0.yaml"].id].read_raw()  # from the oldest pack: the others' indexes are read
    clock.now += 10
    busy(cache, source, clock, 1, step=0)  # the fifth pack: compaction
    assert not packs(cache, source) & before  # the packs the reader was reading are gone
    assert blobs(reader, made[-1]) == expected(source, made[-1])


def test_a_commit_looked_up_during_compaction_stays(
    cache: git.Cache, source: Source, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = busy(cache, source, clock, 4)
    clock.now += 1000  # every commit but the one fetched next is unused now
    write_pack: Callable[..., str] = git._write_pack

    def looked_up_meanwhile(*args: object) -> str:
        name = write_pack(*args)
        assert cache.has_commit(source.url, made[0])  # a poll, on the event loop, while packing
        return name

    monkeypatch.setattr(git, "_write_pack", looked_up_meanwhile)
    change(cache, source)
    repo = pygit2.Repository(str(cache.path(source.url)))
    assert blobs(repo, made[0]) == expected(source, made[0])
    assert len(packs(cache, source)) == 6  # nothing deleted: the new pack beside the old ones
    assert made[0] in pinned(cache, source)  # nor any ref
    monkeypatch.undo()
    clock.now += 1000
    change(cache, source)  # the next compaction, with nobody looking: it goes
    assert len(packs(cache, source)) == 1
    assert not cache.has_commit(source.url, made[0])


def test_a_failed_compaction_only_warns_and_loses_nothing(
    cache: git.Cache, source: Source, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    made = busy(cache, source, clock, 4)

    def disk_full(*args: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(git, "_write_pack", disk_full)
    clock.now += 60
    made.append(change(cache, source))  # five packs: the compaction fails, the poll goes on
    assert f"cannot compact the git cache of {source.url}: [Errno 28] No space left on device" in caplog.text
    assert len(packs(cache, source)) == 5
    repo = pygit2.Repository(str(cache.path(source.url)))
    assert all(blobs(repo, c) == expected(source, c) for c in made)


def test_fetches_go_on_while_packing_and_what_they_bring_stays(
    cache: git.Cache, source: Source, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy(cache, source, clock, 4)
    clock.now += 1000
    write_pack: Callable[..., str] = git._write_pack
    meanwhile: list[str] = []

    def fetched_meanwhile(*args: object) -> str:
        name = write_pack(*args)
        if not meanwhile:  # another GitRepository of the URL polls: the URL's lock is free
            meanwhile.append(change(cache, source))
        return name

    monkeypatch.setattr(git, "_write_pack", fetched_meanwhile)
    change(cache, source)
    repo = pygit2.Repository(str(cache.path(source.url)))
    assert blobs(repo, meanwhile[0]) == expected(source, meanwhile[0])
    assert meanwhile[0] in pinned(cache, source)
    assert str(repo.references["refs/pullsync/heads/main"].target) == meanwhile[0]


def test_the_commit_an_artifact_named_before_stays_a_while(cache: git.Cache, source: Source, clock: Clock) -> None:
    previous = busy(cache, source, clock, 1)[0]
    clock.now += 1000
    cache.used(source.url, previous)  # a new artifact replaced it: a render may still read it
    busy(cache, source, clock, 4, step=20)  # five packs: compacted
    assert cache.has_commit(source.url, previous)
    clock.now += 1000
    busy(cache, source, clock, 5)
    assert not cache.has_commit(source.url, previous)
