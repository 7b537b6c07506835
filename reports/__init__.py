"""Data only: the report's stylesheet (reports/README.md); the report code is the package audit.reporting."""
