"""MLflow processes that tests start on 127.0.0.1, and stop by their own process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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
def tracking_server(root: Path) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with a SQLite backend and a local artifact store."""
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
        f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    url = f"http://127.0.0.1:{port}"
    with mlflow_process(args, f"{url}/health", root, env):
        yield url
