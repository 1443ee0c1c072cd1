"""Every command, subcommand and option of `newsalert` says what it is for in --help."""

from __future__ import annotations

import argparse

from newsalert.cli import build_parser


def walk(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            for name, sub in action.choices.items():
                yield f"{path} {name}", name in helped or bool(sub.description)
                yield from walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", bool(action.help)


def test_every_subcommand_and_option_has_help_text():
    missing = [where for where, helped in walk(build_parser(), "newsalert") if not helped]
    assert missing == []
