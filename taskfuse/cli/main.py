"""``taskfuse`` command line: one sub-command per module in this package, each with ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable
from types import FrameType

from taskfuse.device import reuse_freed_memory
from taskfuse.errors import TaskfuseError
from taskfuse.version import __version__

COMMANDS = ("fuse", "convert", "export", "demo", "datasets", "evaluate", "train", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskfuse", description="Application-guided infrared-visible image fusion.")
    parser.add_argument("--version", action="version", version=f"taskfuse {__version__}")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first: it registers methods, strategies or datasets of your own (repeatable; "
        "docs/extending.md)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"taskfuse.cli.{name}").add_parser(sub)
    return parser


def import_modules(argv: list[str] | None) -> None:
    """Import the ``--import`` modules before the sub-commands are built, so that their registrations (methods,
    strategies, dataset layouts) are known to every sub-command's choices and listings."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--import", dest="imports", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    for module in known.imports:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise TaskfuseError(f"--import {module}: cannot import it ({e}); check the name and PYTHONPATH") from e


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
    try:
        import_modules(sys.argv[1:] if argv is None else argv)
    except TaskfuseError as e:
        print(f"taskfuse: error: {e}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    restore = _terminate_as_interrupt()
    reuse_freed_memory()
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
