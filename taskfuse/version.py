"""The package version, in a module of its own so that any layer can stamp files with it."""

__version__ = "0.2.0"
