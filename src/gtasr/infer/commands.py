"""Subcommands of this area (see gtasr.cli)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to ``subparsers``."""
