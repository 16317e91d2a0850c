"""Console entry point: the indexer's commands plus ``serve``."""
from __future__ import annotations

from indexer.cli import cli


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
