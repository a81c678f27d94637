"""The Hydra layer in-process: which override lists a sweep's check composes, and how the
multirun callback ends a sweep whose summary failed."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from kmeans_exp import tracking
from kmeans_exp.errors import TrackingError
from kmeans_exp.hydra_app import callback
from kmeans_exp.hydra_app.sweep_check import job_overrides


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
