"""Runs left RUNNING by a process that died (``kill -9``, a lost node) are found and ended.

Every run records the host and process that logs it (and, on Linux, when that process
started, so a recycled process id is not taken for the same process). A new run or sweep
marks the RUNNING runs of its experiment that belong to this host and to a process that is
gone as KILLED, with a tag that says why. Runs of a live process, or of another host, are never
touched: from here we cannot tell whether a process on another machine is alive.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)

HOST_TAG = "kmeans_exp.host"
PID_TAG = "kmeans_exp.pid"
PROCESS_START_TAG = "kmeans_exp.process_start"  # clock ticks after boot (Linux /proc)
KILLED_REASON_TAG = "kmeans_exp.killed_reason"


def process_tags() -> dict[str, str]:
    """The tags that name this host and process on a run."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    started = process_start(pid)
    if started is not None:
        tags[PROCESS_START_TAG] = started
    return tags


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (field 22 of ``/proc/<pid>/stat``), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, started: str | None) -> bool:
    """Whether the process that logged a run still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if started is None:
        return True
    current = process_start(pid)
    return current is None or current == started  # another start time: the id was reused


def end_dead_runs(client, experiment_id: str) -> list[str]:
    """Mark this host's RUNNING runs whose process is gone KILLED; return their ids."""
    host = socket.gethostname()
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=10_000,
    )
    ended = []
    for run in runs:
        tags = run.data.tags
        try:
            pid = int(tags[PID_TAG])
        except (KeyError, ValueError):
            continue
        if process_alive(pid, tags.get(PROCESS_START_TAG)):
            continue
        reason = (
            f"process {pid} on {host} ended without closing this run; marked KILLED by "
            f"process {os.getpid()}"
        )
        client.set_tag(run.info.run_id, KILLED_REASON_TAG, reason)
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    if ended:
        log.warning(
            "marked %d run(s) KILLED whose process on %s is gone: %s",
            len(ended),
            host,
            ", ".join(ended),
        )
    return ended
