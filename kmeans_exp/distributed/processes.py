"""Worker processes: how each is started and watched, and why a fit failed, in one line.

Workers run in their own session (the terminal's Ctrl-C reaches the launcher only, which stops
them) and die with the process that started them (``PR_SET_PDEATHSIG``). When one fails, the
others get ``GRACE_SECONDS`` to exit by themselves (their collectives fail at once on a dead
peer, or after ``distributed.timeout_seconds`` on a silent one); then whatever is left is
stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kmeans_exp.errors import KMeansExpError

log = logging.getLogger("kmeans_exp.runner")
PROGRESS_PREFIX = "[worker 0] "  # what worker 0's progress lines start with (``worker``)

GRACE_SECONDS = 10.0  # after one worker fails, how long the others get to exit by themselves
POLL_SECONDS = 0.2
STOP_SECONDS = 5.0  # how long a process stopped with SIGTERM gets before SIGKILL
WORKER_MODULE = "kmeans_exp.distributed.worker"


class WorkerError(KMeansExpError):
    """A worker of a distributed fit failed; the message is its first line."""


def start(
    spec_file: Path, out: Path, name: int | str, env: dict[str, str], prefix: tuple[str, ...] = ()
) -> subprocess.Popen:
    """A worker process (or ``srun``'s), its output in ``worker-<name>.log``."""
    log = (out / f"worker-{name}.log").open("w")
    command = [*prefix, sys.executable, "-m", WORKER_MODULE, str(spec_file)]
    return subprocess.Popen(
        command,
        env=os.environ | env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the terminal's Ctrl-C goes to the launcher, which stops them
        preexec_fn=die_with_parent,
    )


def die_with_parent() -> None:
    """In the child: SIGKILL when the launcher dies, however it dies (Linux's prctl)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such call
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def watch(procs: dict[str, subprocess.Popen], out: Path, progress: Path | None = None) -> None:
    """Wait for every process (by worker name); on the first failure, give the rest
    ``GRACE_SECONDS``, stop them, and raise ``WorkerError`` with the first failure's line.
    Meanwhile, worker 0's progress lines in the log ``progress`` are shown as they come."""
    shown = 0
    try:
        while True:
            if progress is not None:
                shown = _show_progress(progress, shown)
            codes = {name: p.poll() for name, p in procs.items()}
            if all(code == 0 for code in codes.values()):
                return
            failed = [name for name, code in codes.items() if code not in (None, 0)]
            if failed:
                deadline = time.monotonic() + GRACE_SECONDS
                while any(p.poll() is None for p in procs.values()):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(POLL_SECONDS)
                raise WorkerError(failure_line(out, failed[0], procs[failed[0]].returncode))
            time.sleep(POLL_SECONDS)
    finally:
        stop(procs.values())


def stop(procs) -> None:
    """SIGTERM to each process still running (``srun`` passes it on to its tasks, wherever
    they run), then SIGKILL to any left after ``STOP_SECONDS``."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for p in running:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _show_progress(path: Path, shown: int) -> int:
    """Log worker 0's progress lines of ``path`` past byte ``shown``; the new end."""
    try:
        with path.open("rb") as f:
            f.seek(shown)
            text = f.read()
    except OSError:
        return shown
    complete = text[: text.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if line.startswith(PROGRESS_PREFIX):
            log.info("%s", line)
    return shown + len(complete)


def failure_line(out: Path, first: str, code: int) -> str:
    """Why the fit failed: a data error any worker reported, else the first failed worker's
    own line, else how it ended (a signal: it was killed)."""
    errors = sorted(out.glob("worker-*.error"))
    lines = {path.stem.removeprefix("worker-"): path.read_text().strip() for path in errors}
    for line in lines.values():
        if "NaN or inf" in line:
            return line
    if first in lines:
        return f"worker {first}: {lines[first]}"
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    others = "; ".join(f"worker {name}: {line}" for name, line in lines.items())
    return f"worker {first} {how}" + (f" ({others})" if others else "")
