"""The README's flag tables against the parsers: every flag of a sub-command is in its table, and
the table names no flag the sub-command does not have.

A table is marked by the line ``<!-- flags: COMMAND ... -->`` just before it; its flags are the
``--names`` in the first column of each row. :data:`DOCUMENTED` lists the sub-commands whose table
must exist: add yours (``explain``, ``verify``) when you write its table. Any other marked table is
checked too.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from convgrad.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"

#: Sub-commands whose README flag table must exist.
DOCUMENTED = ["check", "verify", "train", "predict", "bench"]
#: Flags every sub-command has, documented once in the README's general paragraph.
COMMON = {"-h", "--help", "-q", "--quiet"}


def readme_tables() -> dict[str, set[str]]:
    """``{command: flags in its table}`` for every marked table of the README."""
    tables = {}
    lines = README.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        marker = re.match(r"<!-- flags: (\w+)", line)
        if not marker:
            continue
        flags = set()
        for row in lines[i + 1:]:
            if not row.startswith("|"):
                break
            first = row.split("|")[1]
            flags |= set(re.findall(r"`(--?[\w-]+)", first))
        tables[marker.group(1)] = flags
    return tables


def parser_flags(command: str) -> set[str]:
    sub = build_parser().subcommands[command]
    return {s for action in sub._actions for s in action.option_strings} - COMMON


def test_the_documented_sub_commands_have_tables():
    assert set(DOCUMENTED) <= set(readme_tables())


@pytest.mark.parametrize("command", sorted(set(DOCUMENTED) | set(readme_tables())))
def test_a_flag_table_lists_exactly_the_flags_of_its_parser(command):
    documented = readme_tables()[command]
    actual = parser_flags(command)
    assert not actual - documented, f"README's {command} table lacks {sorted(actual - documented)}"
    assert not documented - actual, f"README's {command} table names flags {command} does not have: {sorted(documented - actual)}"


@pytest.mark.parametrize("command", DOCUMENTED)
def test_every_flag_has_help_that_shows_its_default(command):
    sub = build_parser().subcommands[command]
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings[0]} has no help text"
        text = sub._get_formatter()._expand_help(action)  # as --help prints it
        if action.default not in (None, False, argparse.SUPPRESS):
            assert "default" in text, f"{command} {action.option_strings[0]}: the help does not show its default: {text!r}"

