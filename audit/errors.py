"""The two kinds of failure the command line tells apart (exit codes in CONTRACT.md)."""


class UsageError(Exception):
    """Bad usage or unusable input: the run cannot start. Exit code 2.

    The message says what is wrong, where (file, column, row group) and how to fix it.
    """


class InputError(Exception):
    """One input shard cannot be read. The other shards finish; the run exits 1 and names it."""
