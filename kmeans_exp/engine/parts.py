"""One worker's share of a split of sharded rows (``Part``), read block by block.

Rows are numbered within the split; worker i of N owns a contiguous range of them, balanced to
within one row, whatever the files' sizes. A block is padded to a fixed size, so XLA compiles
one shape per part.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from kmeans_exp.data import aligned_empty
from kmeans_exp.engine import sharded_passes
from kmeans_exp.engine.passes import shared_tensor
from kmeans_exp.engine.reduce import Reducer, one_hot_slot
from kmeans_exp.errors import DataError
from kmeans_exp.shards import ShardSet, worker_range
from kmeans_exp.tf_runtime import tf

PREFETCH = 2  # blocks read ahead of the one being computed on


@dataclass(frozen=True)
class Part:
    """One worker's rows of one split: rows ``lo:hi`` of the split that starts at global row
    ``split_start`` of ``shards`` and has ``split_rows`` rows (numbers relative to the split)."""

    shards: ShardSet
    split_start: int
    split_rows: int
    lo: int
    hi: int

    @classmethod
    def of(cls, shards: ShardSet, start: int, stop: int, reducer: Reducer) -> Part:
        lo, hi = worker_range(0, stop - start, reducer.rank, reducer.workers)
        return cls(shards, start, stop - start, lo, hi)

    @property
    def rows(self) -> int:
        return self.hi - self.lo

    def block_size(self) -> int:
        """Rows per compiled call: ``block_rows(d)``, or fewer for a small part (a multiple of
        the chunk, or one chunk of the part rounded up to 64 rows)."""
        full = sharded_passes.block_rows(self.shards.dim)
        chunk = full // sharded_passes.BLOCK_CHUNKS
        if self.rows >= full:
            return full
        if self.rows >= chunk:
            return -(-self.rows // chunk) * chunk
        return max(64, -(-self.rows // 64) * 64)

    def blocks(self) -> Iterator[tuple[int, tf.Tensor, tf.Tensor]]:
        """(first row, block padded to ``block_size`` rows, rows that are real), in order.

        A reader thread reads the next blocks from the files while the caller computes on
        this one (``PREFETCH`` ahead): a pass streams the shards at the slower of the disk's
        and the computation's pace, not at their sum.
        """
        size, dim = self.block_size(), self.shards.dim

        def load(start: int) -> tuple[int, np.ndarray, int]:
            stop = min(self.hi, start + size)
            rows = aligned_empty((size, dim), self.shards.dtype)  # shared with TF, not copied
            rows[stop - start :] = 0
            self.shards.read_into(self.split_start + start, rows[: stop - start])
            return start, rows, stop - start

        starts = iter(range(self.lo, self.hi, size))
        with ThreadPoolExecutor(1, thread_name_prefix="kmeans_exp-read") as reader:
            ahead = deque(reader.submit(load, s) for s in itertools.islice(starts, PREFETCH))
            while ahead:
                start, rows, valid = ahead.popleft().result()
                for s in itertools.islice(starts, 1):
                    ahead.append(reader.submit(load, s))
                yield start, shared_tensor(rows, tf.as_dtype(rows.dtype)), tf.constant(valid)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the split, as stored."""
        return self.shards.read(self.split_start + start, self.split_start + stop)

    def labels(self, start: int, stop: int) -> np.ndarray:
        return self.shards.labels(self.split_start + start, self.split_start + stop)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows at sorted split numbers ``rows`` (all in this part)."""
        return self.shards.take(self.split_start + rows)

    def mine(self, rows: np.ndarray) -> np.ndarray:
        """Which of the split numbers ``rows`` fall in this part."""
        return (rows >= self.lo) & (rows < self.hi)

    def bad_slot(self, reducer: Reducer, first: int | None) -> np.ndarray:
        """This worker's first non-finite row (split number, None: none) in its place of a
        (workers,) vector, to travel in the all-reduce that every worker runs anyway."""
        return one_hot_slot(reducer, 0 if first is None else first + 1)

    def raise_if_bad(self, found: np.ndarray) -> None:
        """Raise, on every worker alike, if the all-reduced ``bad_slot`` names a row."""
        for worker, row in enumerate(found):
            if row:
                path, local = self.shards.locate(self.split_start + int(row) - 1)
                raise DataError(
                    f"{path}: row {local} holds NaN or inf (found by worker {worker}), "
                    "expected finite values"
                )


def first_bad(start: int, bad: tf.Tensor, current: int | None) -> int | None:
    """The first non-finite row so far, given a block's report (``CLEAN``: none)."""
    bad = int(bad)
    if bad == sharded_passes.CLEAN:
        return current
    return start + bad if current is None else min(current, start + bad)
