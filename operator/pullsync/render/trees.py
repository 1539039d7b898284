"""Read-only views of a repository's files, for render: a commit read straight from a
git object database (what the operator renders), or a directory on disk (what
`pullsync build` renders). Both answer the same four questions about '/'-separated
paths relative to the repository root ('' is the root); neither follows symbolic links
itself: render does, and keeps them inside the repository.
"""

import os
import stat
from pathlib import Path
from typing import Literal, Protocol

import pygit2

Kind = Literal["dir", "file", "link"]


class Tree(Protocol):
    def kind(self, path: str) -> Kind | None:
        """What `path` is (None: nothing, or something render never reads)."""

    def names(self, path: str) -> list[str]:
        """The entries of the directory `path`."""

    def size(self, path: str) -> int:
        """The size in bytes of the file or link `path`, without reading it."""

    def read(self, path: str) -> bytes:
        """The content of the file `path`, or the target of the link `path`."""


class GitTree:
    """The tree of one commit in a (bare) repository."""

    def __init__(self, repo: pygit2.Repository, commit: str) -> None:
        self.repo = repo
        self.root = repo[commit].peel(pygit2.Tree)

    def _object(self, path: str) -> pygit2.Object | None:
        if not path:
            return self.root
        try:
            return self.root[path]
        except KeyError:
            return None

    def kind(self, path: str) -> Kind | None:
        obj = self._object(path)
        if obj is None or not path:
            return "dir" if obj is not None else None
        if obj.filemode == pygit2.enums.FileMode.LINK:
            return "link"
        return {"tree": "dir", "blob": "file"}.get(obj.type_str)  # type: ignore[return-value]  # submodules: None

    def names(self, path: str) -> list[str]:
        tree = self._object(path)
        return [entry.name or "" for entry in tree] if isinstance(tree, pygit2.Tree) else []

    def size(self, path: str) -> int:
        blob = self._object(path)
        return blob.size if isinstance(blob, pygit2.Blob) else 0

    def read(self, path: str) -> bytes:
        blob = self._object(path)
        return blob.data if isinstance(blob, pygit2.Blob) else b""

    def observe(self, question: str, path: str) -> str | None:
        """What a render learns from asking `question` about `path`: for "kind", the kind
        (and a link's target); for "content", the object id (a directory's covers
        everything below it)."""
        if question == "kind":
            kind = self.kind(path)
            return f"link {self.read(path)!r}" if kind == "link" else kind
        obj = self._object(path)
        return None if obj is None else str(obj.id)

    def unchanged(self, observed: dict[tuple[str, str], str | None]) -> bool:
        """Whether every question has the same answer here as in `observed`."""
        return all(self.observe(*asked) == answer for asked, answer in observed.items())


class Recorded:
    """A commit's tree that notes what render learned from it: a later commit that
    answers the same questions the same way renders the same (`GitTree.unchanged`)."""

    def __init__(self, tree: GitTree) -> None:
        self.tree = tree
        self.observed: dict[tuple[str, str], str | None] = {}

    def _note(self, question: str, path: str) -> None:
        if (question, path) not in self.observed:
            self.observed[question, path] = self.tree.observe(question, path)

    def kind(self, path: str) -> Kind | None:
        self._note("kind", path)
        return self.tree.kind(path)

    def names(self, path: str) -> list[str]:
        self._note("content", path)
        return self.tree.names(path)

    def size(self, path: str) -> int:
        self._note("content", path)
        return self.tree.size(path)

    def read(self, path: str) -> bytes:
        self._note("content", path)
        return self.tree.read(path)


class DirTree:
    """A directory on disk (a checkout, or any folder of manifests). In a git checkout,
    what git ignores and submodules are left out, as they are from a commit; uncommitted
    changes are read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        found = pygit2.discover_repository(str(root))
        self.repo = pygit2.Repository(found) if found else None

    def _stat(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(self.root / path)
        except OSError:
            return None

    def kind(self, path: str) -> Kind | None:
        st = self._stat(path)
        if st is None or (path and self._left_out(path)):
            return None
        if stat.S_ISLNK(st.st_mode):
            return "link"
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        return "file" if stat.S_ISREG(st.st_mode) else None

    def _left_out(self, path: str) -> bool:
        """Ignored by git, or a submodule's checkout (a commit has neither)."""
        if self.repo is None:
            return False
        full = self.root / path
        in_repo = os.path.relpath(full, self.repo.workdir)
        return (full / ".git").exists() or self.repo.path_is_ignored(in_repo) or in_repo.split(os.sep)[0] == ".git"

    def names(self, path: str) -> list[str]:
        return os.listdir(self.root / path)

    def size(self, path: str) -> int:
        st = self._stat(path)
        return st.st_size if st else 0

    def read(self, path: str) -> bytes:
        full = self.root / path
        return os.readlink(full).encode() if full.is_symlink() else full.read_bytes()
