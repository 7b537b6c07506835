"""The tool's version, in one place: pyproject.toml reads it from here, run files and exports record it."""

__version__ = "0.1.0"
