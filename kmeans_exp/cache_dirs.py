"""The one rule for kmeans_exp's cache folders on disk (nothing imported but the standard library).

Each cache (compiled XLA programs, fitted representations, refinements) lives under
``$XDG_CACHE_HOME/kmeans_exp/<name>`` (``~/.cache`` by default), unless its environment variable
names another folder, or turns it off with ``off`` (also ``0``, ``false`` or empty).
"""

from __future__ import annotations

import os
from pathlib import Path

OFF = ("", "off", "0", "false")


def folder(env: str, *default: str) -> Path | None:
    """The folder that ``env`` names, else ``<user cache>/kmeans_exp/<default...>``; None: off."""
    chosen = os.environ.get(env)
    if chosen is not None:
        return None if chosen.strip().lower() in OFF else Path(chosen)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base.joinpath("kmeans_exp", *default)
