"""`studentpack evaluate` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from studentpack.errors import UserError

HELP = "evaluate (not implemented yet)"
DESCRIPTION = HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    raise UserError("not implemented yet")
