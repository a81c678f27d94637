"""Servers that tests start on 127.0.0.1 (MLflow, PostgreSQL, a Ray head), stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def mlflow_process(
    args: list[str], health: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> Iterator[subprocess.Popen]:
    """``python -m mlflow ARGS`` in its own session; stopped (the whole group) on exit."""
    environment = {**os.environ, **(env or {})}
    bin_dir = str(Path(sys.executable).parent)  # `models serve` runs uvicorn from the venv
    environment["PATH"] = bin_dir + os.pathsep + environment.get("PATH", "")
    log = open(cwd / "mlflow-process.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", *args],
        cwd=cwd,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_up(health, proc, timeout)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@contextmanager
def tracking_server(root: Path, backend_uri: str | None = None) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with a local artifact store; SQLite unless ``backend_uri``."""
    port = free_port()
    args = [
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_uri or f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    url = f"http://127.0.0.1:{port}"
    with mlflow_process(args, f"{url}/health", root, env):
        yield url


def _processes_under(marker: str) -> set[int]:
    """PIDs whose command line names ``marker`` (a folder we created), and their descendants."""
    parents: dict[int, int] = {}
    marked: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker in cmdline:
            marked.add(int(entry.name))
    found = set(marked)
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found


def _command(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


def stop_ray_head(marker: str, timeout: float = 20) -> None:
    """Stop the Ray head we started, by PID: raylet first, then its helpers, then gcs_server.

    Never ``ray stop``: it kills every Ray process on the machine, not only ours.
    """
    pids = _processes_under(marker)
    raylet = {p for p in pids if _command(p).endswith("raylet")}
    gcs = {p for p in pids if _command(p).endswith("gcs_server")}
    for group in (raylet, pids - raylet - gcs, gcs):
        for pid in group:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        time.sleep(1)
    deadline = time.monotonic() + timeout
    while (left := _processes_under(marker) & pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _processes_under(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    left = _processes_under(marker)
    assert not left, f"Ray processes left behind: {sorted(left)}"


@contextmanager
def ray_head() -> Iterator[str]:
    """A Ray head on 127.0.0.1 only, in its own temporary folder; yields its address."""
    # Short: Ray's unix socket paths under the temp folder must fit in 107 characters.
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    ray = str(Path(sys.executable).parent / "ray")
    try:
        subprocess.run(
            [
                ray,
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                f"--temp-dir={temp}",
                "--num-cpus=2",
                "--include-dashboard=false",
                "--disable-usage-stats",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        yield f"127.0.0.1:{port}"
    finally:
        stop_ray_head(temp)
        shutil.rmtree(temp, ignore_errors=True)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _run_as_postgres(*args: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120
    )


@contextmanager
def postgres_database(name: str = "mlflow") -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1 only, with one empty database; yields its URI.

    Debian's PostgreSQL 15 refuses to run as root, so ``initdb`` and ``postgres`` run as the
    ``postgres`` user on a temporary folder it owns, with its own socket folder. Stopped by the
    PID in ``postmaster.pid`` (a fast shutdown), never by name.
    """
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    shutil.chown(root, "postgres", "postgres")
    shutil.chown(sockets, "postgres", "postgres")
    port = free_port()
    proc = None
    try:
        _run_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
        log = open(root / "postgres.log", "w")  # noqa: SIM115 (closed below)
        server = [str(PG_BIN / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1"]
        proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", *server, "-p", str(port), "-k", str(sockets)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        ).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not start: {(root / 'postgres.log').read_text()}"
                )
            time.sleep(0.3)
        _run_as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), name)
        yield f"postgresql://postgres@127.0.0.1:{port}/{name}"
    finally:
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        if proc is not None:
            proc.wait(timeout=30)
            log.close()
        shutil.rmtree(root, ignore_errors=True)
