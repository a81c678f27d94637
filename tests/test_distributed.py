"""Sharded data and one fit on N workers: ``data.source=shards``, ``distributed=...``.

The reference of every distributed fit is one worker on the same shards; the centres of 2 and 3
workers must agree with it within float rounding, for every init, full batch and mini-batch.
Slow tests start real worker processes joined by TensorFlow's collective all-reduce on
127.0.0.1 ports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import sharded_fits
from conftest import ROOT
from servers import _processes_under

DISTRIBUTED = pytest.mark.xdist_group("distributed")  # worker processes: one test at a time


def write_uneven(folder: Path, rows: int = 3000, dim: int = 10, clusters: int = 6) -> Path:
    """A mixture in three shards of uneven size, with labels, and a test folder."""
    from kmeans_exp.shards import write

    whole = folder / "whole"
    write.mixture(whole / "train", rows, dim, clusters, seed=5, spread=4.0)
    write.mixture(whole / "test", 1000, dim, clusters, seed=5, spread=4.0, first_row=rows)
    from kmeans_exp.shards import ShardSet

    s = ShardSet.open(whole / "train")
    x, y = s.read(0, s.rows), s.labels(0, s.rows)
    train = folder / "train"
    train.mkdir(parents=True)
    for i, (a, b) in enumerate([(0, 1234), (1234, 1751), (1751, rows)]):
        np.save(train / f"part-{i:05d}.npy", x[a:b])
        np.save(train / f"part-{i:05d}.labels.npy", y[a:b])
    (whole / "test").rename(folder / "test")
    return folder


@pytest.fixture(scope="module")
def uneven(tmp_path_factory) -> Path:
    return write_uneven(tmp_path_factory.mktemp("uneven"))


def store_runs(uri: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments) if experiments else []


# ------------------------------------------------------------------ shards


def test_shards_read_across_files_and_balance_workers(uneven):
    from kmeans_exp.shards import ShardSet, worker_range

    s = ShardSet.open(uneven / "train")
    assert (s.rows, s.dim, s.dtype, s.num_classes) == (3000, 10, np.float32, 6)
    whole = np.concatenate([np.load(p.path) for p in s.shards])
    np.testing.assert_array_equal(s.read(1200, 1800), whole[1200:1800])  # three files
    picked = np.array([3, 1233, 1234, 2999])
    np.testing.assert_array_equal(s.take(picked), whole[picked])
    assert s.locate(1751) == (s.shards[2].path, 0)
    for workers in (1, 2, 3, 4, 7):
        ranges = [worker_range(10, 3000, w, workers) for w in range(workers)]
        sizes = [b - a for a, b in ranges]
        assert ranges[0][0] == 10 and ranges[-1][1] == 3000 and max(sizes) - min(sizes) <= 1
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(workers - 1))


def test_the_writer_is_seeded_and_never_leaves_half_a_folder(tmp_path):
    from kmeans_exp.errors import DataError
    from kmeans_exp.shards import ShardSet, write

    a = ShardSet.open(write.mixture(tmp_path / "a", 1000, 4, 3, seed=1, shard_rows=300))
    b = ShardSet.open(write.mixture(tmp_path / "b", 1000, 4, 3, seed=1, shard_rows=1000))
    assert [s.rows for s in a.shards] == [300, 300, 300, 100]
    np.testing.assert_array_equal(a.labels(0, 1000), b.labels(0, 1000))
    with pytest.raises(DataError, match="already exists and is not empty"):
        write.mixture(tmp_path / "a", 10, 4, 3, seed=1)

    def broken(start, stop):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write.write_blocks(tmp_path / "c", 100, 50, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_the_writer_command_writes_mnist_as_uint8_shards(tmp_path):
    from kmeans_exp.shards import ShardSet
    from kmeans_exp.shards.__main__ import main

    assert main(["mnist", str(tmp_path / "m"), "--shard-rows", "25000"]) == 0
    train, test = ShardSet.open(tmp_path / "m" / "train"), ShardSet.open(tmp_path / "m" / "test")
    assert (train.rows, train.dim, train.dtype, len(train.shards)) == (60000, 784, np.uint8, 3)
    assert (test.rows, test.num_classes) == (10000, 10)


# ------------------------------------------------------------------ bad input: one line, no run


def bad_folder(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / case
    folder.mkdir()
    rows = np.ones((20, 4), np.float32)
    np.save(folder / "part-00000.npy", rows)
    if case == "width":
        np.save(folder / "part-00001.npy", np.ones((20, 5), np.float32))
    elif case == "dtype":
        np.save(folder / "part-00001.npy", np.ones((20, 4), np.uint8))
    elif case == "labels_length":
        np.save(folder / "part-00000.labels.npy", np.zeros(19, np.int64))
    elif case == "labels_some":
        np.save(folder / "part-00000.labels.npy", np.zeros(20, np.int64))
        np.save(folder / "part-00001.npy", rows)
    elif case == "not_rows":
        np.save(folder / "part-00001.npy", np.ones((2, 2, 4), np.float32))
    return folder


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        ("width", [], r"part-00001\.npy: rows of shape \(n, 5\) float32, but part-00000"),
        ("dtype", [], r"part-00001\.npy: rows of shape \(n, 4\) uint8, but part-00000"),
        ("labels_length", [], r"part-00000\.labels\.npy: 19 labels for the 20 rows"),
        ("labels_some", [], r"part-00001\.npy: no labels file \(part-00001\.labels\.npy\)"),
        ("not_rows", [], r"part-00001\.npy: holds shape \(2, 2, 4\) float32, expected rows"),
        ("fine", ["k=21"], r"^k=21: more clusters than the 20 training rows$"),
        (
            "fine",
            ["k=1", "distributed=local", "distributed.workers=21"],
            r"^distributed\.workers=21: more workers than the 20 training rows$",
        ),
    ],
)
def test_bad_shards_give_one_line_and_no_run(tmp_path, case, overrides, message):
    from kmeans_exp import compose, run_experiment
    from kmeans_exp.errors import KMeansExpError

    folder = bad_folder(tmp_path, case)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = compose(["data=shards", f"data.path={folder}", "k=2", f"tracking.uri={uri}", *overrides])
    with pytest.raises(KMeansExpError, match=message) as error:
        run_experiment(exp)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "mlflow.db").exists() or store_runs(uri) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["features=pca"], r"features=pca with data\.source=shards: shards are clustered as"),
        (["refine=gmm"], r"refine=gmm with data\.source=shards"),
        (["protocol=transductive"], r"protocol=transductive with data\.source=shards"),
    ],
)
def test_shards_take_raw_rows_only(overrides, message):
    from kmeans_exp import compose
    from kmeans_exp.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        compose(["data=shards", "data.path=/nowhere", *overrides])


def test_distributed_needs_shards_and_kmeans_parallel_too():
    from kmeans_exp import compose
    from kmeans_exp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^distributed=local: one fit on several workers"):
        compose(["distributed=local"])
    with pytest.raises(ConfigError, match=r"^init=kmeans_parallel: k-means\|\| is for sharded"):
        compose(["init=kmeans_parallel"])
    with pytest.raises(ConfigError, match=r"^distributed\.workers=2 with distributed=none"):
        compose(["distributed.workers=2"])


def test_where_a_fit_runs_is_not_part_of_its_identity():
    from kmeans_exp import compose
    from kmeans_exp.config import config_hash

    base = ["data=shards", "data.path=/shards", "k=10"]
    hashes = {
        config_hash(compose(base + extra))
        for extra in (
            [],
            ["distributed=local", "distributed.workers=2"],
            ["distributed=local", "distributed.workers=4"],
            ["distributed=slurm", "distributed.workers=8", "distributed.timeout_seconds=9"],
        )
    }
    assert len(hashes) == 1
    assert config_hash(compose([*base, "seed=1"])) not in hashes
    assert compose(base).init.value == "kmeans_parallel"  # the default for shards
    assert compose([]).init.value == "kmeans_plus_plus"  # in memory, as before


# ------------------------------------------------------------------ the engine on shards


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_one_worker_on_shards_matches_the_in_memory_engine(tmp_path, dtype):
    """Random init draws the rows the in-memory engine draws. From them, one Lloyd step on
    shards equals a float64 NumPy step to float32 rounding (float64 sums; bytes: exact integer
    sums), and the in-memory engine's float32 sums within 1e-5. After more steps a row near a
    boundary may go the other way, so there only the inertia is compared."""
    from kmeans_exp.engine import KMeans
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.engine.reduce import SingleProcess
    from kmeans_exp.engine.sharded import ShardedKMeans
    from kmeans_exp.shards import ShardSet, write
    from kmeans_exp.tf_runtime import tf

    folder = write.mixture(tmp_path / "m", 3000, 20, 6, seed=4, dtype=dtype, shard_rows=1100)
    s, reducer = ShardSet.open(folder), SingleProcess()
    x = s.read(0, s.rows).astype(np.float64) / (255.0 if dtype == "uint8" else 1.0)
    first = tf.random.stateless_uniform([6], [2, 0], 0, s.rows, dtype=tf.int64).numpy()
    nearest = np.argmin(np.sum((x[:, None] - x[first][None]) ** 2, axis=2), axis=1)
    step = np.stack([x[nearest == j].mean(axis=0) for j in range(6)])
    for steps, tolerance in ((1, 1e-5), (6, 1e-3)):
        settings = dict(distance_metric="squared_euclidean", init="random", seed=2)
        sharded = ShardedKMeans(6, **settings)
        sharded.fit(Part.of(s, 0, s.rows, reducer), steps, reducer)
        memory = KMeans(6, **settings).fit(s.read(0, s.rows), steps)
        assert sharded.inertia_ == pytest.approx(memory.inertia_, rel=tolerance)
        if steps == 1:
            scale = np.abs(step).max()
            np.testing.assert_allclose(sharded.cluster_centers_, step, rtol=0, atol=1e-7 * scale)
            np.testing.assert_allclose(memory.cluster_centers_, step, rtol=0, atol=1e-5 * scale)
    cosine = dict(distance_metric="cosine", init="random", seed=2)  # unit centres
    sharded = ShardedKMeans(6, **cosine).fit(Part.of(s, 0, s.rows, reducer), 6, reducer)
    memory = KMeans(6, **cosine).fit(s.read(0, s.rows), 6)
    assert sharded.inertia_ == pytest.approx(memory.inertia_, rel=1e-3)
    np.testing.assert_allclose(sharded.cluster_centers_, memory.cluster_centers_, atol=1e-3)


def test_kmeans_parallel_finds_every_cluster_of_a_separated_mixture(tmp_path):
    from kmeans_exp import evaluate
    from kmeans_exp.engine import sharded_init
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.engine.reduce import SingleProcess
    from kmeans_exp.shards import ShardSet, write

    s = ShardSet.open(write.mixture(tmp_path / "m", 4000, 16, 12, seed=0, spread=20.0))
    x, y = s.read(0, s.rows).astype(np.float64), s.labels(0, s.rows)
    reducer = SingleProcess()
    settings = sharded_init.InitSettings(12, "kmeans_parallel", False, 2, 5, 2.0)
    found = []
    for seed in range(4):
        c = sharded_init.initial_centers(
            settings, Part.of(s, 0, s.rows, reducer), reducer, np.array([seed, 0]), tmp_path
        ).astype(np.float64)
        nearest = np.argmin(np.sum(c * c, 1)[None] - 2 * x @ c.T, axis=1)
        scores = evaluate.table_scores(evaluate.contingency(nearest, y, 12, 12))
        assert scores["matched_accuracy"] == 1.0
        found.append(c)
    again = sharded_init.initial_centers(
        settings, Part.of(s, 0, s.rows, reducer), reducer, np.array([0, 0]), tmp_path
    )
    np.testing.assert_array_equal(again, found[0])  # seeded
    assert not np.array_equal(found[0], found[1])


def test_scores_from_contingency_tables_equal_scikit_learns():
    from kmeans_exp import evaluate

    rng = np.random.default_rng(0)
    for n, k, c in [(2000, 20, 10), (60, 3, 2), (30, 1, 1), (200, 5, 1)]:
        y, z = rng.integers(0, c, n), rng.integers(0, k, n)
        expected = evaluate.partition_scores(y, z)
        got = evaluate.table_scores(evaluate.contingency(z, y, k, c))
        for name in ("nmi", "ari", "matched_accuracy"):
            assert got[name] == pytest.approx(expected[name], abs=1e-12)


def test_table_scores_take_a_test_split_with_fewer_or_more_classes():
    from kmeans_exp import evaluate

    train = np.array([[5, 1, 0], [0, 4, 0], [0, 0, 3]])  # clusters labelled 0, 1, 2
    fewer = evaluate.evaluate_tables(
        train.sum(1), 1.0, train, None, np.array([[2, 1], [0, 3], [1, 0]]), 2.0
    )
    assert fewer.metrics["test_accuracy"] == pytest.approx(5 / 7)
    more = np.array([[2, 1, 0, 1], [0, 3, 0, 0], [1, 0, 2, 0]])  # a class training never saw
    scored = evaluate.evaluate_tables(train.sum(1), 1.0, train, None, more, 2.0)
    assert scored.metrics["test_accuracy"] == pytest.approx(7 / 10)
    assert scored.confusion.tolist() == [[2, 0, 1], [1, 3, 0], [0, 0, 2]]
    assert scored.metrics["test_inertia"] == 2.0 and scored.metrics["empty_clusters"] == 0


def test_a_nan_row_is_named_by_file_and_row(uneven, tmp_path):
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.engine.reduce import SingleProcess
    from kmeans_exp.engine.sharded import ShardedKMeans
    from kmeans_exp.errors import DataError
    from kmeans_exp.shards import ShardSet

    folder = tmp_path / "nan"
    folder.mkdir()
    for path in (uneven / "train").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    rows = np.load(folder / "part-00001.npy")
    rows[7, 3] = np.nan
    np.save(folder / "part-00001.npy", rows)
    s, reducer = ShardSet.open(folder), SingleProcess()
    for init in ("random", "kmeans_parallel"):
        model = ShardedKMeans(4, init=init)
        with pytest.raises(DataError, match=r"part-00001\.npy: row 7 holds NaN or inf"):
            model.fit(Part.of(s, 0, s.rows, reducer), 2, reducer)


# ------------------------------------------------------------------ N workers


def local_fits(folder: Path, workers: int, out: Path) -> subprocess.Popen:
    from kmeans_exp.distributed import cluster

    addresses = [f"127.0.0.1:{p}" for p in cluster.free_ports(workers)]
    return [
        subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "sharded_fits.py"), str(folder), str(out)],
            env=os.environ | {"TF_CONFIG": cluster.tf_config(addresses, i)},
        )
        for i in range(workers)
    ]


@pytest.mark.slow
@DISTRIBUTED
def test_two_and_three_workers_give_one_workers_centres(uneven, tmp_path):
    from kmeans_exp.engine.reduce import SingleProcess

    reference = sharded_fits.fit_all(str(uneven), SingleProcess())
    runs = {n: local_fits(uneven, n, tmp_path / f"{n}.npz") for n in (2, 3)}
    for procs in runs.values():
        assert [p.wait(timeout=300) for p in procs] == [0] * len(procs)
    for n in runs:
        got = np.load(tmp_path / f"{n}.npz")
        for init, mini in sharded_fits.CASES:
            name = f"{init}-{'mini' if mini else 'full'}"
            np.testing.assert_allclose(got[name], reference[name], rtol=1e-6, atol=1e-6)
            same = np.mean(got[f"{name}-test"] == reference[f"{name}-test"])
            assert same >= 0.9999, (n, name, same)


@pytest.fixture
def launched():
    """Starts ``python -m kmeans_exp`` runs; whatever a test leaves running is stopped at its
    end (Ctrl-C, then SIGKILL), so a failing test leaves no launcher or worker behind."""
    procs = []

    def start(args: list[str], cwd: Path, tmp: Path | None = None) -> subprocess.Popen:
        procs.append(cli(args, cwd, tmp))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cli(args: list[str], cwd: Path, tmp: Path | None = None) -> subprocess.Popen:
    """The command in ``cwd``, its store there; its temporary files (the workers' folder)
    under ``tmp`` (default ``cwd``), so the workers' command lines name the test's folder."""
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}",
        "TMPDIR": str(tmp or cwd),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kmeans_exp", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def shard_args(folder: Path, *extra: str) -> list[str]:
    return [
        "data=shards",
        f"data.path={folder / 'train'}",
        f"data.test_path={folder / 'test'}",
        "k=6",
        "distance_metric=squared_euclidean",
        *extra,
    ]


@pytest.mark.slow
@DISTRIBUTED
def test_a_local_run_logs_one_run_like_a_single_process_one(uneven, tmp_path, launched):
    import mlflow

    one = launched(shard_args(uneven, "steps=5"), tmp_path)
    assert one.wait(timeout=300) == 0, one.stderr.read()
    two = launched(
        shard_args(uneven, "steps=5", "distributed=local", "distributed.workers=2"), tmp_path
    )
    assert two.wait(timeout=300) == 0, two.stderr.read()
    runs = store_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    by_workers = {r.data.params["distributed.workers"]: r for r in runs}
    assert sorted(by_workers) == ["1", "2"]
    single, pair = by_workers["1"], by_workers["2"]
    assert pair.info.status == "FINISHED"
    assert pair.data.tags["kmeans_exp.config_hash"] == single.data.tags["kmeans_exp.config_hash"]
    for key in ("inertia", "test_accuracy", "test_nmi", "train_accuracy"):
        assert pair.data.metrics[key] == pytest.approx(single.data.metrics[key], rel=1e-6)
    assert pair.data.metrics["test_accuracy"] > 0.95
    assert pair.data.params["data.train_rows"] == "3000"
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    steps = client.get_metric_history(pair.info.run_id, "avg_distance")
    assert [m.step for m in steps] == [1, 2, 3, 4, 5]
    logs = [a.path for a in client.list_artifacts(pair.info.run_id, "workers")]
    assert logs == ["workers/worker-0.log", "workers/worker-1.log"]
    assert not _processes_under(str(tmp_path))


@pytest.fixture(scope="module")
def long_fit(tmp_path_factory) -> Path:
    """Enough rows that a few hundred steps take tens of seconds."""
    from kmeans_exp.shards import write

    folder = tmp_path_factory.mktemp("long")
    write.mixture(folder / "train", 200_000, 32, 20, seed=0)
    write.mixture(folder / "test", 1000, 32, 20, seed=0, first_row=200_000)
    return folder


def wait_for_steps(tmp_path: Path, timeout: float = 120) -> str:
    import mlflow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # workers start once the launcher has made the store and the run: not before, or
        # this process would race its first migration of the new database
        if len(worker_pids(tmp_path)) == 2:
            runs = store_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
            client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
            if runs and client.get_metric_history(runs[0].info.run_id, "avg_distance"):
                return runs[0].info.run_id
        time.sleep(0.5)
    raise AssertionError("no step was logged")


def worker_pids(tmp_path: Path) -> dict[int, int]:
    """Worker number -> PID of the workers started for runs under ``tmp_path``."""
    pids = {}
    for pid in _processes_under(str(tmp_path)):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kmeans_exp.distributed.worker" in cmd:
            config = next(e for e in env if e.startswith(b"TF_CONFIG="))
            pids[json.loads(config[10:])["task"]["index"]] = pid
    return pids


@pytest.mark.slow
@DISTRIBUTED
@pytest.mark.parametrize("victim", [0, 1])
def test_a_killed_worker_fails_the_run_and_no_worker_is_left(long_fit, tmp_path, launched, victim):
    args = shard_args(long_fit, "steps=100000", "distributed=local", "distributed.workers=2")
    launcher = launched([*args, "distributed.timeout_seconds=30"], tmp_path)
    run_id = wait_for_steps(tmp_path)
    os.kill(worker_pids(tmp_path)[victim], signal.SIGKILL)
    killed = time.monotonic()
    code = launcher.wait(timeout=120)
    assert time.monotonic() - killed < 60
    assert code != 0
    assert f"worker {victim} was killed by signal 9" in launcher.stderr.read()
    runs = store_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FAILED")]
    assert not _processes_under(str(tmp_path))


@pytest.mark.slow
@DISTRIBUTED
def test_ctrl_c_kills_every_worker_and_the_run(long_fit, tmp_path, launched):
    args = shard_args(long_fit, "steps=100000", "distributed=local", "distributed.workers=2")
    launcher = launched(args, tmp_path)
    wait_for_steps(tmp_path)
    assert len(worker_pids(tmp_path)) == 2
    launcher.send_signal(signal.SIGINT)
    launcher.wait(timeout=60)
    runs = store_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [r.info.status for r in runs] == ["KILLED"]
    assert not _processes_under(str(tmp_path))


@pytest.mark.slow
@DISTRIBUTED
def test_a_nan_row_fails_the_distributed_run_naming_it(uneven, tmp_path, launched):
    folder = tmp_path / "data"
    (folder / "train").mkdir(parents=True)
    for path in (uneven / "train").iterdir():
        (folder / "train" / path.name).write_bytes(path.read_bytes())
    (folder / "test").symlink_to(uneven / "test")
    rows = np.load(folder / "train" / "part-00001.npy")
    rows[7, 3] = np.inf
    np.save(folder / "train" / "part-00001.npy", rows)
    launcher = launched(shard_args(folder, "distributed=local", "distributed.workers=2"), tmp_path)
    assert launcher.wait(timeout=300) != 0
    assert "part-00001.npy: row 7 holds NaN or inf" in launcher.stderr.read()
    runs = store_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not _processes_under(str(tmp_path))


@pytest.mark.slow
@DISTRIBUTED
def test_a_folder_larger_than_the_memory_limit_fits(tmp_path):
    """RLIMIT_DATA (private memory; file-backed maps do not count) below the data's size:
    loading the rows fails under it, the sharded fit does not, and equals one worker's fit
    of the same rows without the limit. RLIMIT_DATA counts reserved address space too, and a
    worker joined by the collective reserves gigabytes it never touches (thread stacks, gRPC),
    so the limited fit runs in this one process (distributed=none); the benchmark measures the
    workers' resident private memory (RssAnon) on 30 GiB."""
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.engine.reduce import SingleProcess
    from kmeans_exp.engine.sharded import ShardedKMeans
    from kmeans_exp.shards import ShardSet, write

    limit = 700 * 2**20
    folder = tmp_path / "big"
    write.mixture(folder / "train", 1_000_000, 784, 10, seed=0, dtype="uint8")
    s = ShardSet.open(folder / "train")
    assert s.rows * s.dim > limit
    script = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_DATA, ({limit}, {limit}))
from kmeans_exp.shards import ShardSet
s = ShardSet.open({str(folder / "train")!r})
try:
    s.read(0, s.rows).astype("float32")
    sys.exit("the whole set fitted in memory: the limit does not bite")
except MemoryError:
    pass
from kmeans_exp import run_experiment, compose
result = run_experiment(compose(["data=shards", "data.path={folder / "train"}", "k=10",
    "init=random", "steps=3", "distance_metric=squared_euclidean", "tracking.enabled=false"]))
import numpy as np
np.save({str(tmp_path / "centers.npy")!r}, result.model.cluster_centers_)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    reducer = SingleProcess()
    free = ShardedKMeans(10, distance_metric="squared_euclidean", init="random")
    free.fit(Part.of(s, 0, s.rows, reducer), 3, reducer)
    np.testing.assert_allclose(np.load(tmp_path / "centers.npy"), free.cluster_centers_, rtol=1e-6)


# ------------------------------------------------------------------ slurm and ray


def test_slurm_variables_give_the_cluster_srun_would(monkeypatch):
    from kmeans_exp.distributed import cluster

    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node[01-02]")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2(x2)")
    config = json.loads(cluster.slurm_tf_config(8888))
    assert config == {
        "cluster": {"worker": ["node01:8888", "node01:8889", "node02:8888", "node02:8889"]},
        "task": {"type": "worker", "index": 3},
    }


FAKE_SRUN = """#!/bin/sh
# srun --ntasks=N --kill-on-bad-exit=1 COMMAND...: N tasks on this host, as SLURM sets them
n=${1#--ntasks=}; shift; shift
pids=""
i=0
while [ $i -lt $n ]; do
  SLURM_PROCID=$i SLURM_STEP_NUM_TASKS=$n SLURM_STEP_NODELIST=localhost \\
  SLURM_STEP_TASKS_PER_NODE=$n "$@" &
  pids="$pids $!"
  i=$((i + 1))
done
status=0
for pid in $pids; do wait $pid || status=1; done
exit $status
"""


@pytest.mark.slow
@DISTRIBUTED
def test_slurm_runs_the_fit_as_srun_tasks(uneven, tmp_path):
    from kmeans_exp.distributed import cluster

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    port = cluster.free_ports(1)[0]
    args = shard_args(uneven, "distributed=slurm", "distributed.workers=2")
    env_path = f"{bin_dir}:{os.environ['PATH']}"
    launcher = subprocess.run(
        [sys.executable, "-m", "kmeans_exp", *args, f"distributed.port_base={port}"],
        cwd=tmp_path,
        env=os.environ | {"PATH": env_path, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launcher.returncode == 0, launcher.stderr[-2000:]
    (run,) = store_runs(f"sqlite:///{tmp_path}/m.db")
    assert run.data.params["distributed.kind"] == "slurm"
    assert run.data.metrics["test_accuracy"] > 0.95


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # never beside the Ray sweep test (test_scale_out.py)
def test_ray_runs_the_fit_on_two_actors_with_the_same_result(uneven, tmp_path, launched):
    one = launched(shard_args(uneven), tmp_path)
    assert one.wait(timeout=300) == 0, one.stderr.read()
    # Ray's session (sockets) goes under TMPDIR: a short one, for AF_UNIX's 107-byte paths
    short = Path(tempfile.mkdtemp(prefix="kr", dir="/tmp"))
    args = shard_args(uneven, "distributed=ray", "distributed.workers=2")
    try:
        ray = launched(args, tmp_path, short)
        assert ray.wait(timeout=600) == 0, ray.stderr.read()[-2000:]
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert not (Path.home() / ".ray" / "auth_token").exists()  # Ray's token went with it
    runs = {
        r.data.params["distributed.kind"]: r for r in store_runs(f"sqlite:///{tmp_path}/mlflow.db")
    }
    assert runs["ray"].info.status == "FINISHED"
    for key in ("inertia", "test_accuracy", "test_nmi"):
        assert runs["ray"].data.metrics[key] == pytest.approx(
            runs["none"].data.metrics[key], rel=1e-6
        )
