"""A dense autoencoder (Keras 3 on TensorFlow), trained to reconstruct the rows; its encoder is
kept as an ``Encoder`` step.

The layers are DEC's and N2D's: ``d -> hidden... -> code -> reversed hidden... -> d``, ReLU
between them, the code and the output linear, mean squared error, Adam. Training is seeded
(weights and shuffling); on the CPU the same seed gives the same encoder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from kmeans_exp.features.served_steps import Encoder

log = logging.getLogger(__name__)


def fit(
    x: np.ndarray,
    hidden: Sequence[int],
    code_size: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    jit_compile: bool = True,
    on_epoch_end: Callable[[int, Encoder], None] | None = None,
) -> tuple[Encoder, list[float]]:
    """Train on float rows ``x``; the encoder and the training loss after each epoch.

    XLA (``jit_compile``) trains about 1.5x faster here than Keras' graph mode
    (``benchmarks/representations.py`` measures both). ``on_epoch_end(epoch, encoder)`` sees
    the encoder after each epoch (1-based), for learning curves.
    """
    # isort: off
    from kmeans_exp.engine.tf_runtime import tf  # first: TensorFlow quietly, as the engine does
    import keras

    # isort: on

    keras.utils.set_random_seed(seed)
    width = x.shape[1]
    inputs = keras.Input((width,))
    h = inputs
    for units in hidden:
        h = keras.layers.Dense(units, activation="relu")(h)
    code = keras.layers.Dense(code_size, name="code")(h)
    h = code
    for units in reversed(hidden):
        h = keras.layers.Dense(units, activation="relu")(h)
    outputs = keras.layers.Dense(width)(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="mse", jit_compile=jit_compile
    )
    n_encoder = len(hidden) + 1  # dense layers up to and including the code
    data = tf.data.Dataset.from_tensor_slices((x, x))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    losses: list[float] = []
    started = [time.perf_counter()]

    def report(epoch: int, logs: dict) -> None:
        losses.append(float(logs["loss"]))
        seconds, started[0] = time.perf_counter() - started[0], time.perf_counter()
        log.info(
            "autoencoder epoch %d/%d loss %.5f (%.1fs)", epoch + 1, epochs, losses[-1], seconds
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, _encoder(model, n_encoder))

    done = keras.callbacks.LambdaCallback(on_epoch_end=report)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=[done])  # shuffled above
    return _encoder(model, n_encoder), losses


def _encoder(model, n_layers: int) -> Encoder:
    """The first ``n_layers`` dense layers' weights, as a NumPy ``Encoder``."""
    dense = [layer for layer in model.layers if hasattr(layer, "kernel")][:n_layers]
    weights = [np.asarray(layer.kernel.numpy(), np.float32) for layer in dense]
    return Encoder(weights, [np.asarray(layer.bias.numpy(), np.float32) for layer in dense])
