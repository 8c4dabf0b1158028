"""``taskfuse`` command line: one sub-command per module in this package, each with ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable
from types import FrameType

from taskfuse.errors import TaskfuseError
from taskfuse.version import __version__

COMMANDS = ("fuse", "demo", "datasets", "evaluate", "train", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskfuse", description="Application-guided infrared-visible image fusion.")
    parser.add_argument("--version", action="version", version=f"taskfuse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"taskfuse.cli.{name}").add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's stop), handled like Ctrl-C: temporary files are removed."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _terminate_as_interrupt() -> Callable[[], None]:
    """Handle SIGTERM like SIGINT while a command runs; returns the function restoring the old handler.

    Signal handlers can only be set from the main thread; elsewhere SIGTERM keeps its default action.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    restore = _terminate_as_interrupt()
    try:
        return int(args.run(args) or 0)
    except TaskfuseError as e:
        print(f"taskfuse {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(
            f"taskfuse {args.command}: interrupted; finished outputs are kept and a rerun skips them", file=sys.stderr
        )
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
