"""``python -m taskfuse``: the ``taskfuse`` command, for environments where the console script is not installed."""

import sys

from taskfuse.cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
