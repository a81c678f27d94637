"""How the workers of one fit add up their partial results: one all-reduce of float64 values.

The sharded fit calls ``Reducer.sum`` at the same points on every worker (every worker runs the
same steps, whatever its share of rows: a worker that skipped a collective would hang the
others). ``SingleProcess`` is the one-worker reducer; ``kmeans_exp.distributed`` provides the
multi-worker one (TensorFlow's collective all-reduce). ``allreduce`` packs arrays of any shape
into one message: counts travel as float64, exact below 2**53.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np


class Reducer(Protocol):
    rank: int  # this worker's number, 0 .. workers - 1; worker 0 is the chief
    workers: int
    seconds: float  # time spent in ``sum``, for the benchmark

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of every worker's ``values`` (float64, same shape on all)."""
        ...


class SingleProcess:
    """One worker: the sum is the value itself."""

    rank = 0
    workers = 1

    def __init__(self) -> None:
        self.seconds = 0.0

    def sum(self, values: np.ndarray) -> np.ndarray:
        return np.array(values, dtype=np.float64)


def allreduce(reducer: Reducer, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each array summed over the workers in one collective, returned with its shape; integer
    arrays come back as int64."""
    flat = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays])
    start = time.perf_counter()
    total = reducer.sum(flat)
    reducer.seconds += time.perf_counter() - start
    out, offset = [], 0
    for a in arrays:
        a = np.asarray(a)
        part = total[offset : offset + a.size].reshape(a.shape)
        out.append(np.rint(part).astype(np.int64) if a.dtype.kind in "iub" else part)
        offset += a.size
    return out


def one_hot_slot(reducer: Reducer, value: float) -> np.ndarray:
    """A (workers,) vector holding ``value`` at this worker's place: after ``allreduce``, every
    worker's value, in worker order."""
    slots = np.zeros(reducer.workers)
    slots[reducer.rank] = value
    return slots
