"""The config schema and the CLI's answers to bad input: fast, one line, nothing created."""

from __future__ import annotations

import pytest
from conftest import run_cli
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from kmeans_exp import compose, config
from kmeans_exp.config import CONFIG_DIR
from kmeans_exp.errors import ConfigError


def composed(*overrides: str):
    config.register_schema()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def test_defaults_are_the_documented_ones():
    exp = config.to_experiment_config(composed())
    assert (exp.k, exp.distance_metric, exp.init) == (
        25,
        config.DistanceMetric.cosine,
        config.Init.kmeans_plus_plus,
    )
    assert (exp.use_mini_batch, exp.batch_size, exp.steps, exp.seed) == (False, None, 15, 0)
    assert exp.n_init == 1 and exp.tracking.enabled
    assert compose([]) == exp  # the Python API composes what the command line composes
    assert exp.data.source is config.DataSource.bundled and exp.data.validation_size == 5000
    assert exp.tracking.uri is None and exp.tracking.experiment_name == "kmeans_exp"


def test_seed_tutorial_preset_is_the_original():
    exp = config.to_experiment_config(composed("experiments=seed_tutorial"))
    assert (exp.k, exp.distance_metric.value, exp.init.value) == (25, "cosine", "random")
    assert (exp.use_mini_batch, exp.batch_size, exp.steps) == (True, None, 50)
    assert exp.data.validation_size == 5000


@pytest.mark.parametrize(
    "preset, key, values",
    [
        ("k_sweep", "k", "10,25,50,100,200"),
        ("metric_comparison", "distance_metric", "cosine,squared_euclidean"),
    ],
)
def test_sweep_presets_only_add_sweeper_params(preset, key, values):
    cfg = composed(f"experiments={preset}")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        hydra_cfg = hydra_compose(
            "config", overrides=[f"experiments={preset}"], return_hydra_config=True
        )
    assert hydra_cfg.hydra.sweeper.params[key] == values
    assert config.to_experiment_config(cfg) == config.to_experiment_config(composed())


def test_presets_start_with_a_comment_saying_question_and_command():
    for preset in sorted((CONFIG_DIR / "experiments").glob("*.yaml")):
        text = preset.read_text()
        assert text.startswith("# @package _global_\n# Question:"), preset.name
        assert "python -m kmeans_exp" in text, preset.name


def test_flatten_gives_dotted_string_params():
    flat = config.flatten(config.to_experiment_config(composed("batch_size=512")))
    assert flat["k"] == "25" and flat["batch_size"] == "512"
    assert flat["distance_metric"] == "cosine" and flat["data.source"] == "bundled"
    assert flat["tracking.uri"] == "null"


@pytest.mark.parametrize(
    "override, message",
    [
        ("k=0", "k=0: expected an integer >= 1"),
        ("steps=0", "steps=0: expected an integer >= 1"),
        ("batch_size=-1", "batch_size=-1: expected an integer >= 1"),
        ("seed=-3", "seed=-3"),
        ("data.validation_size=-1", "data.validation_size=-1"),
        ("data.source=idx", "data.path: required with data.source=idx"),
        ("data.path=/x", "data.path: must be null with data.source=bundled"),
    ],
)
def test_value_checks_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        config.to_experiment_config(composed(override))


def test_check_against_data():
    exp = config.to_experiment_config(composed("k=100", "batch_size=60"))
    exp.check_against_data(100, 784)
    with pytest.raises(ConfigError, match="k=100: more clusters than the 99 training rows"):
        exp.check_against_data(99, 784)
    with pytest.raises(ConfigError, match="batch_size=60: larger than the 59 training rows"):
        config.to_experiment_config(composed("k=3", "batch_size=60")).check_against_data(59, 784)
    pca = config.to_experiment_config(composed("features=pca", "features.n_components=30"))
    pca.check_against_data(100, 30)
    with pytest.raises(ConfigError, match="n_components=30: more components than the 29 input"):
        pca.check_against_data(100, 29)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("distance_metric=manhattan", "Invalid value 'manhattan', expected one of"),
        ("k=abc", "Value 'abc' of type 'str' could not be converted to Integer"),
        ("use_mini_batch=maybe", "Value 'maybe' is not a valid bool"),
        ("foo=1", "Key 'foo' not in 'ExperimentConfig'"),
        ("+foo=1", "foo: not a config key; expected one of k, distance_metric"),
        ("+data.bar=1", "data.bar: not a config key; expected one of source, path"),
        ("experiments=nope", "Could not find 'experiments/nope'"),
        ("k=0", "k=0: expected an integer >= 1 (the number of clusters)"),
        ("n_init=0", "n_init=0: expected an integer >= 1 (the number of restarts)"),
    ],
)
def test_compose_refuses_bad_overrides_with_one_line(override, expected):
    """What the command line composes, ``kmeans_exp.compose`` composes and checks the same way."""
    with pytest.raises(ConfigError) as error:
        compose([override])
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("distance_metric=manhattan", "Invalid value 'manhattan', expected one of"),
        ("+foo=1", "foo: not a config key; expected one of k, distance_metric"),
        ("k=55001", "k=55001: more clusters than the 55000 training rows"),
        ("batch_size=70000", "batch_size=70000: larger than the 55000 training rows"),
        ("data.source=npz data.path=/nonexistent.npz", "/nonexistent.npz: no such file"),
        # A sweep is checked, every value, before its parent run opens: no run is left behind.
        ("-m k=10,abc", "Error merging override k=abc: Value 'abc' of type 'str' could not be"),
        ("-m experiments=k_sweep k=10,0", "k=0: expected an integer >= 1"),
        # An optimising sweep has no values to list: its fixed ones are checked all the same.
        ("-m experiments=k_search steps=0", "steps=0: expected an integer >= 1"),
        # The representation's settings, checked like the rest (some against the data).
        ("features=pca features.n_components=785", "more components than the 784 input columns"),
        ("features=autoencoder features.epochs=0", "features.epochs=0: expected an integer >= 1"),
        ("features=precomputed", "features.path: required, but not set"),
        ("features=precomputed features.path=/no.npz", "features.path=/no.npz: no such file"),
        ("-m features=raw,bogus", "Could not find 'features/bogus'"),
    ],
)
def test_cli_refuses_bad_input_with_a_clear_line_and_creates_nothing(tmp_path, override, expected):
    result = run_cli(override.split(), tmp_path, timeout=120)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow run, not even a store
    assert "tensorflow" not in result.stderr.lower()
