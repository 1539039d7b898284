"""Allows `python -m pullsync ...` as an alias of the `pullsync` console script."""

from pullsync import cli

if __name__ == "__main__":
    raise SystemExit(cli.main())
