"""Which files under a Sync's path are read: ignore rules in gitignore syntax.

Rules come in layers, and the last layer with a pattern matching a path decides (a
`!pattern` re-includes): pullsync's defaults (version control and CI files), the
`.sourceignore` file at the repository root, the one at the Sync's path (its patterns
relative to that path), and the GitRepository's `spec.ignore`. An ignored directory is
not read at all. Only `*.yaml`, `*.yml` and `*.json` files are read in the first place.
"""

import pathspec

FILE = ".sourceignore"
DEFAULTS = (
    # version control
    ".git/",
    # CI and tooling configuration that is YAML but not for the cluster
    ".github/",
    ".gitlab/",
    ".gitlab-ci.yml",
    ".circleci/",
    ".travis.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    ".goreleaser.yml",
    ".goreleaser.yaml",
    ".pre-commit-config.yaml",
    ".sops.yaml",
)


class Rules:
    """Layers of gitignore patterns, each relative to a directory of the repository."""

    def __init__(self) -> None:
        self.layers: list[tuple[str, pathspec.GitIgnoreSpec]] = []
        self.add("\n".join(DEFAULTS))

    def add(self, text: str, base: str = "") -> None:
        """Add the patterns in `text` (gitignore syntax), relative to the directory `base`."""
        self.layers.append((base, pathspec.GitIgnoreSpec.from_lines(text.splitlines())))

    def ignored(self, path: str, *, directory: bool = False) -> bool:
        """Whether the last layer with a pattern matching `path` leaves it out."""
        ignored = False
        for base, spec in self.layers:
            if base and not path.startswith(base + "/"):
                continue
            relative = path[len(base) + 1 :] if base else path
            include = spec.check_file(relative + "/" if directory else relative).include
            if include is not None:
                ignored = include
        return ignored
