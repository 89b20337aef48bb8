"""The package's version: its own module, so that what records it (provenance, `--version`) need not import
the package's face (`cluster_work/__init__.py`, which imports the whole engine)."""

__version__ = "0.1.0"
