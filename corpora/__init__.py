"""Data only: the sample corpus the demo audits (corpora/README.md)."""
