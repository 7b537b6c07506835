"""Data only: the model, its card, the written training passages and the label records (classifiers/README.md)."""
