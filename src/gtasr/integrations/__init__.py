"""Adapters to other tools; each is importable only where that tool is installed."""
