"""Command-line interface; ``taskfuse.cli.main:main`` is the console script."""
