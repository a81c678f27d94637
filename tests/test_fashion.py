"""``data=fashion_mnist``: Debian's files checked (hashes, label counts, shapes), a wrong or a
missing file refused in one line before any run, and a short run whose class names reach
MLflow. Skipped, saying why, where Debian's dataset-fashion-mnist is not installed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest

import kmeans_exp
from kmeans_exp import data
from kmeans_exp.errors import DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not FASHION.is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)",
)


def test_the_fashion_option_reads_debians_files():
    config = kmeans_exp.compose(["data=fashion_mnist"])
    assert (config.data.source.value, config.data.path) == ("idx", str(FASHION))
    assert (config.data.dataset, config.data.validation_size) == ("fashion_mnist", 5000)


@needs_fashion
def test_fashion_mnist_is_checked_and_split_as_mnist_is():
    raw = data.load_raw("idx", str(FASHION), "fashion_mnist")
    assert raw.train_images.shape == (60000, 28, 28) and raw.test_images.shape == (10000, 28, 28)
    assert np.bincount(raw.train_labels).tolist() == [6000] * 10
    assert np.bincount(raw.test_labels).tolist() == [1000] * 10
    assert raw.class_names[0] == "T-shirt/top" and raw.class_names[9] == "Ankle boot"
    assert raw.noun == "class"
    splits = data.split(raw, 5000)
    assert len(splits.x_train) == 55000 and len(splits.x_val) == 5000
    np.testing.assert_array_equal(splits.x_val[0], raw.train_images[0].ravel())


@needs_fashion
def test_mnists_file_renamed_into_fashion_is_refused_naming_it(tmp_path, mnist_raw):
    for f in FASHION.iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    mnist_test = data.idx_bytes(mnist_raw.test_images)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(mnist_test)
    with pytest.raises(DataError) as error:
        data.load_raw("idx", str(tmp_path), "fashion_mnist")
    message = str(error.value)
    assert message.startswith(f"{tmp_path}: t10k-images-idx3-ubyte content has sha256")
    assert "expected the official fashion_mnist" in message and "\n" not in message


def test_missing_fashion_files_say_where_and_how_to_get_them_and_no_run_exists(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "fashion").mkdir()
    config = kmeans_exp.compose(["data=fashion_mnist", f"data.path={tmp_path / 'fashion'}"])
    with pytest.raises(DataError) as error:
        kmeans_exp.run_experiment(config, tracking={"uri": uri})
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'fashion'}: missing IDX file train-images-idx3-ubyte")
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message
    assert not (tmp_path / "mlflow.db").exists()


@needs_fashion
@pytest.mark.slow
def test_a_short_fashion_run_logs_its_data_scores_and_class_names(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["data=fashion_mnist", "k=10", "steps=10", "distance_metric=squared_euclidean"]
    result = kmeans_exp.run_experiment(
        kmeans_exp.compose(overrides), tracking={"uri": uri, "log_model": False}
    )
    client = mlflow.MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.data.params["data.dataset"] == "fashion_mnist"
    # K-Means on Fashion-MNIST pixels: published 0.47 matched (70k images); chance is 0.1.
    assert 0.35 < run.data.metrics["test_matched_accuracy"] < 0.65
    assert 0.4 < run.data.metrics["test_nmi"] < 0.65
    table = json.loads(Path(client.download_artifacts(result.run_id, "clusters.json")).read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    names = {row["class"] for row in rows}
    assert names <= set(data.NAMED["fashion_mnist"].class_names) and "Trouser" in names
    assert [i.dataset.name for i in run.inputs.dataset_inputs][:1] == ["fashion_mnist-train"]
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
