"""Semantic-version ranges over tag names, for `ref.semver`.

Supports the forms people write in GitOps tools: comparators (`>=1.2.0 <2.0.0`,
commas allowed), exact versions, wildcards (`1.x`, `1.2.*`, `*`), caret (`^1.2`),
tilde (`~1.2.3`) and alternatives joined by `||`. Tags may carry a leading `v`.
Pre-releases match only a comparator that names a pre-release of the same core.
"""

import dataclasses
import re

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_PARTIAL = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*(.+)$")


@dataclasses.dataclass(frozen=True, order=True)
class Version:
    """A parsed semantic version; ordering follows semver precedence."""

    major: int
    minor: int
    patch: int
    pre: "Pre" = (1, ())  # a release sorts after any of its pre-releases

    @classmethod
    def parse(cls, text: str) -> "Version | None":
        m = _VERSION.match(text.strip())
        if not m:
            return None
        return cls(int(m[1]), int(m[2]), int(m[3]), _pre(m[4]))

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def prerelease(self) -> bool:
        return self.pre[0] == 0


# (0, identifiers) for a pre-release, (1, ()) for a release; (0, ()) is below every pre-release.
Pre = tuple[int, tuple[tuple[int, int, str], ...]]
LOWEST: Pre = (0, ())


def _pre(text: str | None) -> Pre:
    if not text:
        return (1, ())
    # numeric identifiers sort before alphanumeric ones, numerically.
    return (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in text.split(".")))


Bound = tuple[str, Version]


def _expand(op: str, text: str) -> list[Bound]:
    m = _PARTIAL.match(text)
    if not m:
        raise ValueError(f"invalid version {text!r} in semver range")
    parts = [None if p is None or p in "xX*" else int(p) for p in (m[1], m[2], m[3])]
    pre = _pre(m[4])
    major, minor, patch = parts
    if major is None:
        return [] if op in ("", "=", ">=", "^", "~") else [("<", Version(0, 0, 0, LOWEST))]
    floor = Version(major, minor or 0, patch or 0, pre)
    if minor is None:
        ceiling = Version(major + 1, 0, 0, LOWEST)
    elif patch is None:
        ceiling = Version(major, minor + 1, 0, LOWEST)
    else:
        ceiling = None
    if op == "^":
        if major > 0 or minor is None:
            ceiling = Version(major + 1, 0, 0, LOWEST)
        elif minor > 0 or patch is None:
            ceiling = Version(0, minor + 1, 0, LOWEST)
        else:
            ceiling = Version(0, 0, (patch or 0) + 1, LOWEST)
        return [(">=", floor), ("<", ceiling)]
    if op == "~":
        ceiling = Version(major, (minor or 0) + 1, 0, LOWEST) if minor is not None else ceiling
        return [(">=", floor)] + ([("<", ceiling)] if ceiling else [])
    if op in ("", "="):
        return [(">=", floor), ("<", ceiling)] if ceiling else [("=", floor)]
    if op == ">" and ceiling:
        return [(">=", ceiling)]
    if op == "<=" and ceiling:
        return [("<", ceiling)]
    return [(op, floor)]


class Range:
    """A parsed range; `Range(">=1.0 <2").matches(Version.parse("1.4.0"))`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.alternatives: list[list[Bound]] = []
        for alternative in text.split("||"):
            tokens = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alternative.replace(",", " ")).split()
            bounds: list[Bound] = []
            for token in tokens:
                m = _COMPARATOR.match(token)
                assert m is not None
                bounds.extend(_expand(m[1] or "", m[2]))
            self.alternatives.append(bounds)
        if not any(self.alternatives) and "*" not in text and "x" not in text.lower():
            raise ValueError(f"empty semver range {text!r}")

    def matches(self, version: Version) -> bool:
        return any(self._matches(bounds, version) for bounds in self.alternatives)

    @staticmethod
    def _matches(bounds: list[Bound], version: Version) -> bool:
        if version.prerelease and not any(b.pre[1] and b.core == version.core for _, b in bounds):
            return False
        checks = {
            "=": lambda b: version == b,
            ">=": lambda b: version >= b,
            ">": lambda b: version > b,
            "<=": lambda b: version <= b,
            "<": lambda b: version < b,
        }
        return all(checks[op](bound) for op, bound in bounds)


def check(range_text: str) -> None:
    """Raise ValueError, naming the field, if `range_text` is no semver range."""
    try:
        Range(range_text)
    except ValueError as e:
        raise ValueError(f"spec.ref.semver: {e}") from None


def newest(tags: list[str], range_text: str) -> str | None:
    """The tag with the highest version inside the range, or None."""
    wanted = Range(range_text)
    best: tuple[Version, str] | None = None
    for tag in tags:
        version = Version.parse(tag)
        if version is not None and wanted.matches(version) and (best is None or version > best[0]):
            best = (version, tag)
    return best[1] if best else None
