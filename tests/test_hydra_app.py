"""The Hydra layer in-process: which override lists a sweep's check composes, and how the
multirun callback ends a sweep whose summary failed."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, read_write

from kmeans_exp import tracking
from kmeans_exp.config import CONFIG_DIR, register_schema
from kmeans_exp.errors import ConfigError, TrackingError
from kmeans_exp.hydra_app import callback
from kmeans_exp.hydra_app.sweep_check import check_jobs, job_overrides


def hydra_config(task: list[str], params: dict[str, str] | None = None):
    return OmegaConf.create(
        {"hydra": {"sweeper": {"params": params or {}}, "overrides": {"task": task}}}
    )


def test_a_sweep_check_composes_each_value_and_each_interval_end():
    config = hydra_config(["k=10,20", "steps=3"], {"seed": "0,1"})
    assert job_overrides(config) == [
        ["steps=3", "seed=0"],
        ["steps=3", "seed=1"],
        ["steps=3", "k=10"],
        ["steps=3", "k=20"],
    ]
    optuna = hydra_config(["steps=0"], {"k": "int(interval(5, 200))"})
    assert job_overrides(optuna) == [["steps=0", "k=5"], ["steps=0", "k=200"]]
    assert job_overrides(hydra_config(["steps=2"])) == [["steps=2"]]


@pytest.fixture
def multirun_config():
    """The composed config of ``python -m kmeans_exp -m TASK...``, as the callback sees it."""
    register_schema()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):

        def make(task: list[str]):
            cfg = compose("config", return_hydra_config=True)
            with read_write(cfg):
                cfg.hydra.overrides.task = task
            return cfg

        yield make


@pytest.mark.parametrize(
    "task, message",
    [
        (["k=10,0"], "k=0: expected an integer >= 1"),
        (["k=10,abc"], "Value 'abc' of type 'str' could not be converted to Integer"),
        (["k=5", "steps=1,0"], "steps=0: expected an integer >= 1"),
        (["foo=1,2"], "Could not override 'foo'"),  # a new key needs "+", as in Hydra
        (["features=raw,nope"], "Could not find 'features/nope'"),
        (["features=pca,raw", "features.n_components=0"], "n_components=0"),
    ],
)
def test_the_sweep_check_refuses_a_bad_plain_or_group_value(multirun_config, task, message):
    with pytest.raises(ConfigError, match=message):
        check_jobs(multirun_config(task))


def test_the_sweep_check_passes_good_plain_and_group_values(multirun_config):
    check_jobs(multirun_config(["k=5,6", "features=raw,pca", "seed=0,1"]))


def test_a_failed_summary_makes_the_sweep_exit_non_zero_with_one_line(monkeypatch, capsys):
    def failing(context, interrupted):
        raise TrackingError("sweep parent run abc: its summary failed (boom); the run ended FAILED")

    monkeypatch.setattr(tracking, "close_parent", failing)
    hook = callback.MlflowSweepCallback()
    hook._context = tracking.SweepContext("sqlite:///x.db", "1", "abc", ["k"])
    with pytest.raises(SystemExit) as exit_:
        hook.on_multirun_end(OmegaConf.create({}))
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "sweep parent run abc: its summary failed (boom); the run ended FAILED\n"
    )
