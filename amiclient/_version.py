"""The package version: the one place it is written (setup.cfg reads it, ``amiclient.__version__`` re-exports it)."""

__version__ = "0.1.0"
