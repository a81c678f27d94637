"""``autoencoder``: a dense autoencoder (Keras 3 on TensorFlow), trained to reconstruct the rows;
its encoder is the served step, and its decoder is kept for IDEC.

The layers are DEC's and N2D's: ``d -> hidden... -> code -> reversed hidden... -> d``, ReLU
between them, the code and the output linear, mean squared error, Adam. Training is seeded
(weights and shuffling); on the CPU the same seed gives the same encoder.
"""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.features.kinds import Fitted, FittedFeatures
from kmeans_exp.features.served_steps import Dense
from kmeans_exp.options import Precision

log = logging.getLogger(__name__)

LIBRARIES = ("tensorflow", "keras")
DECODER = "decoder"  # the key of the decoder's arrays in ``Fitted.arrays``


@dataclass
class Params:
    """The network and its training (also n2d's first part)."""

    hidden: list[int] = MISSING
    code_size: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    learning_rate: float = MISSING
    precision: Precision = MISSING

    def check(self) -> None:
        for i, size in enumerate(self.hidden):
            options.at_least(f"features.hidden[{i}]", size, 1, "units of a hidden layer")
        options.at_least("features.code_size", self.code_size, 1, "the code's width")
        options.at_least("features.epochs", self.epochs, 1)
        options.at_least("features.batch_size", self.batch_size, 1)
        options.positive("features.learning_rate", self.learning_rate)


@dataclass
class Config(FittedFeatures, Params):
    KIND: typing.ClassVar[str] = "autoencoder"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check()


def fit(config: Config, x: np.ndarray) -> Fitted:
    """Train on float rows ``x``: the encoder step, the loss per epoch, the decoder's arrays."""
    encoder, decoder, losses = train(config, x)
    return Fitted([encoder], history={"autoencoder_loss": losses}, arrays=decoder.arrays(DECODER))


def train(
    config: Params,
    x: np.ndarray,
    seed: int | None = None,
    jit_compile: bool = True,
    on_epoch_end: Callable[[int, Dense, Dense], None] | None = None,
) -> tuple[Dense, Dense, list[float]]:
    """The trained encoder and decoder, and the training loss after each epoch.

    ``seed`` defaults to the config's. XLA (``jit_compile``) trains about 1.15x faster on 2
    cores than Keras' graph mode (``benchmarks/representations.py --speed-only`` measures both).
    ``on_epoch_end(epoch, encoder, decoder)`` sees both after each epoch (1-based), for curves.
    """
    # isort: off
    from kmeans_exp.tf_runtime import tf  # first: TensorFlow quietly, as the engine does
    import keras

    # isort: on

    seed = config.seed if seed is None else seed
    epochs = config.epochs
    keras.utils.set_random_seed(seed)
    policy = _policy(config.precision)
    width = x.shape[1]
    inputs = keras.Input((width,))
    h = inputs
    for units in config.hidden:
        h = keras.layers.Dense(units, activation="relu", dtype=policy)(h)
    code = keras.layers.Dense(config.code_size, name="code", dtype=policy)(h)
    h = code
    for units in reversed(config.hidden):
        h = keras.layers.Dense(units, activation="relu", dtype=policy)(h)
    outputs = keras.layers.Dense(width, dtype="float32")(h)  # the loss in float32
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse", jit_compile=jit_compile
    )
    n_encoder = len(config.hidden) + 1  # dense layers up to and including the code
    data = tf.data.Dataset.from_tensor_slices((x, x))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(config.batch_size)
    losses: list[float] = []
    started = [time.perf_counter()]

    def report(epoch: int, logs: dict) -> None:
        losses.append(float(logs["loss"]))
        seconds, started[0] = time.perf_counter() - started[0], time.perf_counter()
        log.info(
            "autoencoder epoch %d/%d loss %.5f (%.1fs)", epoch + 1, epochs, losses[-1], seconds
        )
        if on_epoch_end is not None:
            encoder = dense_stack(model.layers, 0, n_encoder)
            on_epoch_end(epoch + 1, encoder, dense_stack(model.layers, n_encoder, 2 * n_encoder))

    done = keras.callbacks.LambdaCallback(on_epoch_end=report)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=[done])  # shuffled above
    encoder = dense_stack(model.layers, 0, n_encoder)
    decoder = dense_stack(model.layers, n_encoder, 2 * n_encoder)
    return encoder, decoder, losses


def native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512_BF16 or AMX), per Linux."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _policy(precision: Precision) -> str:
    """The Keras dtype policy of the hidden layers; bfloat16 without native support still runs
    (emulated, slowly), with a warning."""
    if precision is Precision.float32:
        return "float32"
    if not native_bfloat16():
        log.warning("features.precision=bfloat16: this CPU has no native bfloat16; it will be slow")
    return "mixed_bfloat16"


def dense_stack(layers: list, start: int, stop: int) -> Dense:
    """Dense layers ``start:stop`` (counting dense layers only) as a NumPy ``Dense`` step."""
    dense = [layer for layer in layers if hasattr(layer, "kernel")][start:stop]
    return Dense(
        [np.asarray(layer.kernel.numpy(), np.float32) for layer in dense],
        [np.asarray(layer.bias.numpy(), np.float32) for layer in dense],
    )
