"""Resolving a GitRepository ref against the remote's refs (no network)."""

import pytest

from pullsync import api
from pullsync.source import git
from pullsync.source.gitauth import GitFailure

A, B, C, T = "a" * 40, "b" * 40, "c" * 40, "d" * 40
REFS = {
    "HEAD": A,
    "HEAD->": "refs/heads/main",
    "refs/heads/main": A,
    "refs/heads/dev": B,
    "refs/tags/v1.0.0": T,  # an annotated tag object ...
    "refs/tags/v1.0.0^{}": C,  # ... peeled to its commit
    "refs/tags/v1.1.0": B,
}


@pytest.mark.parametrize(
    ("ref", "name", "commit", "revision"),
    [
        (api.GitRef(), "main", A, f"main@sha1:{A}"),
        (api.GitRef(branch="dev"), "dev", B, f"dev@sha1:{B}"),
        (api.GitRef(tag="v1.0.0"), "v1.0.0", C, f"v1.0.0@sha1:{C}"),
        (api.GitRef(semver="~1.0"), "v1.0.0", C, f"v1.0.0@sha1:{C}"),
        (api.GitRef(semver=">=1.0.0"), "v1.1.0", B, f"v1.1.0@sha1:{B}"),
        (api.GitRef(commit=T), T, T, f"sha1:{T}"),
        (api.GitRef(branch="main", commit=T), "main", T, f"main@sha1:{T}"),  # pinned in a branch, as Flux names it
        (api.GitRef(branch="main", tag="v1.0.0", semver=">=1.0.0"), "v1.1.0", B, f"v1.1.0@sha1:{B}"),
    ],
)
def test_refs_resolve_to_the_right_commit(ref: api.GitRef, name: str, commit: str, revision: str) -> None:
    resolved = git.resolve(REFS, ref)
    assert (resolved.name, resolved.commit, resolved.revision) == (name, commit, revision)


def test_without_a_symref_the_head_branch_is_found_by_its_commit() -> None:
    refs = {k: v for k, v in REFS.items() if k != "HEAD->"}
    assert git.resolve(refs, api.GitRef()).name == "main"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (api.GitRef(branch="nope"), "branch 'nope' not found"),
        (api.GitRef(tag="v9"), "tag 'v9' not found"),
        (api.GitRef(semver=">=5"), "no tag matches semver range '>=5'"),
    ],
)
def test_a_missing_ref_is_a_ref_failure_naming_it(ref: api.GitRef, message: str) -> None:
    with pytest.raises(GitFailure, match=message) as e:
        git.resolve(REFS, ref)
    assert e.value.cause == "ref"


@pytest.mark.parametrize(
    ("url", "ssh"),
    [
        ("ssh://git@host/org/repo.git", True),
        ("git@github.com:org/repo.git", True),
        ("https://host/org/repo.git", False),
        ("http://user:pw@host/repo.git", False),
    ],
)
def test_ssh_urls_are_recognised(url: str, ssh: bool) -> None:
    assert git.is_ssh(url) is ssh
