"""``python -m taskfuse``: the ``taskfuse`` command, for environments where the console script is not installed."""

import sys

from taskfuse.cli.main import main

sys.exit(main(sys.argv[1:]))
