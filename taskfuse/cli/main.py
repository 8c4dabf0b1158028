"""``taskfuse`` command line: one sub-command per module in this package, each with ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
import sys

from taskfuse.errors import TaskfuseError
from taskfuse.version import __version__

COMMANDS = ("fuse", "convert", "demo", "datasets", "evaluate", "train", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskfuse", description="Application-guided infrared-visible image fusion.")
    parser.add_argument("--version", action="version", version=f"taskfuse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"taskfuse.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except TaskfuseError as e:
        print(f"taskfuse {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"taskfuse {args.command}: interrupted; finished outputs are kept and a rerun skips them", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
