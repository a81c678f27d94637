"""Fitted representations on disk, so that a sweep fits each one once, across processes too.

An entry is a folder named by its key (a hash of the data, the config with its seed, and the library
versions that shape the result), holding the transformed splits, the fitted steps, the arrays a
later stage needs (the autoencoder's decoder, a refinement's centres) and a manifest with the sha256
of every file. The refinements after the K-Means keep their entries here too. It is written under a
temporary name and renamed into place (atomic on one filesystem), so parallel jobs never see half an
entry; when two jobs fit the same entry at once, the first rename wins and the other's copy is
dropped. An entry whose files do not match its manifest (truncated, edited, half-deleted) is removed
and refitted.

The folder is ``$XDG_CACHE_HOME/kmeans_exp/features`` (``~/.cache`` by default);
``KMEANS_EXP_FEATURE_CACHE`` names another, or turns the cache off with ``off`` (``cache_dirs``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmeans_exp import cache_dirs
from kmeans_exp.data import sha256_file
from kmeans_exp.features import served_steps

log = logging.getLogger(__name__)

ENV = "KMEANS_EXP_FEATURE_CACHE"
FORMAT = 2  # bump when what an entry holds changes
SPLITS_FILE = "splits.npz"
ARRAYS_FILE = "arrays.npz"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Entry:
    """A fitted representation: the three splits transformed, the steps, what fitting logged."""

    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    steps: list
    history: dict[str, list[float]]  # per-epoch series, e.g. the autoencoder's loss
    fit_seconds: float  # what the fit cost when it ran
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # for later stages
    # A training that continues (the autoencoder's): the key of its recipe without the budget,
    # the budget reached (epochs), and how much of it this fit trained itself.
    lineage: str | None = None
    budget: int | None = None
    trained: int | None = None


def folder() -> Path | None:
    """The cache folder, or None when ``KMEANS_EXP_FEATURE_CACHE=off``."""
    return cache_dirs.folder(ENV, "features")


def key(parts: dict) -> str:
    """The entry name for what determines a representation (JSON-able values)."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def fetch(name: str, fit: Callable[[], Entry]) -> tuple[Entry, str]:
    """The entry ``name`` from the cache (``"hit"``), or ``fit()`` stored under it (``"miss"``;
    ``"off"`` when the cache is off)."""
    entry = load(name)
    if entry is not None:
        return entry, "hit"
    entry = fit()
    store(name, entry)
    return entry, "off" if folder() is None else "miss"


def load(name: str) -> Entry | None:
    """The entry ``name`` if it is there and whole; a damaged one is removed (None)."""
    root = folder()
    if root is None or not (root / name).is_dir():
        return None
    path = root / name
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        for file, digest in manifest["sha256"].items():
            if sha256_file(path / file) != digest:
                raise ValueError(f"{file} does not match its manifest")
        with np.load(path / SPLITS_FILE, allow_pickle=False) as f:
            splits = [f[k] for k in ("x_train", "x_val", "x_test")]
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        steps = served_steps.load(path / "steps")
    except Exception as e:  # anything unreadable: refit rather than trust it
        log.warning("feature cache entry %s is damaged (%s): fitting it again", path, e)
        shutil.rmtree(path, ignore_errors=True)
        return None
    return Entry(
        *splits,
        steps,
        manifest["history"],
        manifest["fit_seconds"],
        arrays,
        manifest.get("lineage"),
        manifest.get("budget"),
        manifest.get("trained"),
    )


def longest_before(lineage: str, budget: int) -> Entry | None:
    """The cached entry of ``lineage`` with the largest budget below ``budget``, if any: what a
    longer training of the same recipe continues from."""
    root = folder()
    if root is None or not root.is_dir():
        return None
    found: dict[str, int] = {}
    for manifest in root.glob(f"*/{MANIFEST}"):
        if manifest.parent.name.startswith("."):  # an entry being written
            continue
        try:
            values = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue  # a damaged entry is not a candidate; load() removes it when asked for
        if values.get("lineage") == lineage and values.get("budget", budget) < budget:
            found[manifest.parent.name] = values["budget"]
    for name in sorted(found, key=found.get, reverse=True):
        entry = load(name)
        if entry is not None:
            return entry
    return None


def store(name: str, entry: Entry) -> None:
    """Write ``entry`` as ``name``, atomically; an unwritable cache only logs a warning."""
    root = folder()
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    except OSError as e:
        log.warning("feature cache %s is not writable (%s): not cached", root, e)
        return
    try:
        np.savez(tmp / SPLITS_FILE, x_train=entry.x_train, x_val=entry.x_val, x_test=entry.x_test)
        np.savez(tmp / ARRAYS_FILE, **entry.arrays)
        served_steps.save(entry.steps, tmp / "steps")
        files = [p for p in tmp.rglob("*") if p.is_file()]
        manifest = {
            "sha256": {str(p.relative_to(tmp)): sha256_file(p) for p in files},
            "history": entry.history,
            "fit_seconds": entry.fit_seconds,
            "lineage": entry.lineage,
            "budget": entry.budget,
            "trained": entry.trained,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        os.rename(tmp, root / name)  # atomic; fails if another job got there first
    except OSError:
        pass  # the other job's entry is as good as ours, or the disk is full: not cached
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
