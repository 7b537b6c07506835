"""The command line as a new user meets it: help for every option, examples, one-line usage errors, a run
directory that never lands inside its input, and a run whose inputs all fail."""

from __future__ import annotations

import argparse

import pytest
from support import cli, write_shard

from audit.cli import build_parser


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **commands.choices}


@pytest.mark.parametrize("command", sorted(_parsers()))
def test_every_option_and_argument_has_help(command):
    parser = _parsers()[command]
    missing = [a.dest for a in parser._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert missing == [], f"corpus-audit {command}: no help for {missing}"
    assert "TOKENS_COLUMN" not in parser.format_help()


def test_top_level_help_shows_three_examples():
    done = cli("--help", check=True)
    examples = done.stdout.split("examples:")[1].strip().splitlines()
    assert len(examples) == 3 and all(line.strip().startswith("corpus-audit ") for line in examples)


def test_a_usage_error_is_one_line_naming_the_fix_and_help():
    done = cli("scan", "somewhere")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["corpus-audit: error: the following arguments are required: --out "
                                        "(see `corpus-audit scan --help`)"]
    bad_choice = cli("scan", "x", "--out", "y", "--engine", "spark")
    assert bad_choice.stderr.count("\n") == 1 and "invalid choice: 'spark'" in bad_choice.stderr


@pytest.mark.parametrize("where", ["in/run", "in/deeper/run", "in"])
def test_scan_refuses_a_run_directory_inside_an_input_folder(tmp_path, where):
    write_shard(tmp_path / "in" / "a.parquet", ["The robot refused. " * 5])
    for inputs in ([str(tmp_path / "in")], [str(tmp_path / "in" / "**" / "*.parquet")]):
        done = cli("scan", *inputs, "--out", str(tmp_path / where))
        assert done.returncode == 2 and "inside the input folder" in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a.parquet"]  # nothing written


def test_a_run_beside_a_single_input_file_is_fine(tmp_path):
    shard = write_shard(tmp_path / "in" / "a.parquet", ["The robot refused. " * 5])
    cli("scan", str(shard), "--out", str(tmp_path / "in" / "run"), check=True)
    again = cli("scan", str(shard), "--out", str(tmp_path / "in" / "run"), check=True)
    assert "1 of 1 units were already scanned" in again.stderr


def test_a_run_where_no_input_can_be_read_exits_2_and_writes_no_report(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "in" / "b.jsonl").write_text("{broken\n")
    done = cli("scan", str(tmp_path / "in"), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert "no input could be read (2 failed)" in done.stderr and "b.jsonl:1" in done.stderr
    assert "nothing to do" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "report.html").exists() and not (tmp_path / "run" / "summary.json").exists()
