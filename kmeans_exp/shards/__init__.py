"""Sharded data: a folder of ``.npy`` row files that no process reads whole.

A shard folder holds ``(n_i, d)`` arrays of float32 or uint8 rows (``part-00000.npy``, ...), in
name order, and optionally a labels file beside each (``part-00000.labels.npy``, integers >= 0,
one per row). Rows are numbered globally across the files in that order, so a worker's range
of rows does not depend on how the files were cut. Every read goes through memory maps: a
chunk of rows is copied out of the page cache, never a whole shard.

``python -m kmeans_exp.shards`` writes data sets in this format. This package imports neither
TensorFlow nor MLflow; errors are ``DataError``, one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from kmeans_exp.errors import DataError

LABELS_SUFFIX = ".labels.npy"
ROW_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


@dataclass(frozen=True)
class Shard:
    """One file of rows, and its labels file when there is one."""

    path: Path
    rows: int
    labels_path: Path | None


@dataclass(frozen=True)
class ShardSet:
    """The shards of one folder, checked for format: same width and dtype, labels that fit."""

    folder: Path
    shards: tuple[Shard, ...]
    dim: int
    dtype: np.dtype

    @classmethod
    def open(cls, folder: str | Path, key: str = "data.path") -> ShardSet:
        """Read the headers of every shard in ``folder`` (``key`` names the setting in errors)."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise DataError(f"{key}={folder}: no such folder (expected a folder of .npy shards)")
        files = sorted(p for p in folder.glob("*.npy") if not p.name.endswith(LABELS_SUFFIX))
        if not files:
            raise DataError(f"{key}={folder}: no .npy shards in the folder")
        shards, first = [], None
        for path in files:
            rows = _open_rows(path)
            if first is None:
                first = rows
            elif rows.shape[1] != first.shape[1] or rows.dtype != first.dtype:
                raise DataError(
                    f"{path}: rows of shape (n, {rows.shape[1]}) {rows.dtype}, but "
                    f"{files[0].name} has (n, {first.shape[1]}) {first.dtype}: every shard "
                    "must have the same width and dtype"
                )
            shards.append(Shard(path, rows.shape[0], _labels_path(path, rows.shape[0])))
        labelled = [s.labels_path is not None for s in shards]
        if any(labelled) and not all(labelled):
            missing = shards[labelled.index(False)].path
            raise DataError(
                f"{missing}: no labels file ({missing.name[:-4]}{LABELS_SUFFIX}) while other "
                "shards have one: label every shard or none"
            )
        return cls(folder, tuple(shards), first.shape[1], first.dtype)

    # ------------------------------------------------------------------ shape

    @cached_property
    def offsets(self) -> np.ndarray:
        """Global number of each shard's first row, and the total at the end."""
        return np.concatenate([[0], np.cumsum([s.rows for s in self.shards])]).astype(np.int64)

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def has_labels(self) -> bool:
        return self.shards[0].labels_path is not None

    @cached_property
    def num_classes(self) -> int:
        """1 + the largest label (read file by file through memory maps); 0 without labels."""
        if not self.has_labels:
            return 0
        return 1 + max(int(np.max(_mapped(s.labels_path), initial=0)) for s in self.shards)

    def locate(self, row: int) -> tuple[Path, int]:
        """The file holding global ``row`` and the row's number inside it."""
        index = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return self.shards[index].path, int(row - self.offsets[index])

    # ------------------------------------------------------------------ reading

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (global numbers) as stored: a copy of those rows only."""
        return np.array(self.view(start, stop))

    def read_into(self, start: int, out: np.ndarray) -> None:
        """Rows ``start:start + len(out)`` into ``out`` with plain file reads (no memory map):
        sequential, and without the interpreter lock, so a reader thread overlaps them with
        the computation on the previous rows."""
        row_bytes = self.dim * self.dtype.itemsize
        index = int(np.searchsorted(self.offsets, start, side="right")) - 1
        done = 0
        while done < len(out):
            shard, base = self.shards[index], int(self.offsets[index])
            take = min(len(out) - done, base + shard.rows - (start + done))
            target = memoryview(out[done : done + take]).cast("B")
            with shard.path.open("rb", buffering=0) as f:
                f.seek(self.header_bytes[index] + (start + done - base) * row_bytes)
                while target:
                    got = f.readinto(target)
                    if not got:
                        raise DataError(f"{shard.path}: shorter than its header says")
                    target = target[got:]
            done, index = done + take, index + 1

    @cached_property
    def header_bytes(self) -> tuple[int, ...]:
        """Where each shard's rows start in its file (after the .npy header)."""
        return tuple(int(_mapped(s.path).offset) for s in self.shards)

    def view(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``: a view of the memory map when one shard holds them all (no
        copy: the caller's own copy, into a tensor, is the only one), else a joined copy."""
        return self._read(start, stop, labels=False)

    def labels(self, start: int, stop: int) -> np.ndarray:
        """Labels of rows ``start:stop`` as int64 (a copy)."""
        return self._read(start, stop, labels=True).astype(np.int64)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The rows at sorted global numbers ``rows`` (a mini-batch, the chosen centres)."""
        out = np.empty((len(rows), self.dim), self.dtype)
        files = np.searchsorted(self.offsets, rows, side="right") - 1
        for index in np.unique(files):
            here = files == index
            out[here] = _mapped(self.shards[index].path)[rows[here] - self.offsets[index]]
        return out

    def _read(self, start: int, stop: int, labels: bool) -> np.ndarray:
        stop = min(stop, self.rows)
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        parts = []
        index = max(first, 0)
        while start < stop:
            shard, base = self.shards[index], int(self.offsets[index])
            end = min(stop, base + shard.rows)
            array = _mapped(shard.labels_path if labels else shard.path)
            parts.append(array[start - base : end - base])
            start, index = end, index + 1
        if not parts:
            shape = (0,) if labels else (0, self.dim)
            return np.empty(shape, np.int64 if labels else self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def worker_range(start: int, stop: int, worker: int, workers: int) -> tuple[int, int]:
    """Worker ``worker``'s contiguous share of rows ``start:stop``: sizes differ by one at most."""
    base, extra = divmod(stop - start, workers)
    first = start + worker * base + min(worker, extra)
    return first, first + base + (1 if worker < extra else 0)


def _mapped(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _open_rows(path: Path) -> np.ndarray:
    try:
        rows = _mapped(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from None
    if rows.ndim != 2 or rows.dtype not in ROW_DTYPES:
        raise DataError(
            f"{path}: holds shape {rows.shape} {rows.dtype}, expected rows (n, d) of float32 "
            "or uint8"
        )
    if not rows.flags.c_contiguous:
        raise DataError(f"{path}: stored in Fortran order, expected C order (row by row)")
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise DataError(f"{path}: holds shape {rows.shape}, expected at least one row and column")
    return rows


def _labels_path(path: Path, rows: int) -> Path | None:
    labels_path = path.with_name(path.name[:-4] + LABELS_SUFFIX)
    if not labels_path.exists():
        return None
    try:
        labels = _mapped(labels_path)
    except (OSError, ValueError) as e:
        raise DataError(f"{labels_path}: not a readable .npy file ({e})") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{labels_path}: holds shape {labels.shape} {labels.dtype}, expected ({rows},) "
            "integer labels"
        )
    if labels.shape[0] != rows:
        raise DataError(
            f"{labels_path}: {labels.shape[0]} labels for the {rows} rows of {path.name}, "
            "expected one per row"
        )
    if labels.dtype.kind == "i" and labels.size and int(labels.min()) < 0:
        raise DataError(f"{labels_path}: holds negative labels, expected integers >= 0")
    return labels_path
