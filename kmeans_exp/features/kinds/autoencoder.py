"""``autoencoder``: a dense autoencoder (Keras 3 on TensorFlow), trained to reconstruct the rows;
its encoder is the served step, and its decoder is kept for IDEC.

The layers are DEC's and N2D's: ``d -> hidden... -> code -> reversed hidden... -> d``, ReLU
between them, the code and the output linear, mean squared error; Adam (N2D) or SGD with momentum
(DEC-keras), from Glorot or DEC-keras's VarianceScaling kernels. Training is seeded (weights and
shuffling); on the CPU the same seed gives the same encoder.

A training continues (``CONTINUES``): the fitted result keeps the optimiser's state beside the
weights, and a longer training of the same recipe starts from it. Each epoch's shuffle is a draw
of the input pipeline's seeded generator, so the continued run makes the draws of the epochs
already trained first and then sees the same batches a straight run would.
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
from kmeans_exp.errors import ConfigError
from kmeans_exp.features.kinds import Fitted, FittedFeatures
from kmeans_exp.features.served_steps import Dense
from kmeans_exp.options import KernelInit, Optimizer, Precision

log = logging.getLogger(__name__)

LIBRARIES = ("tensorflow", "keras")
DECODER = "decoder"  # the key of the decoder's arrays in ``Fitted.arrays``
OPTIMIZER = "optimizer"  # the prefix of the optimiser's state in ``Fitted.arrays``
LOSS = "autoencoder_loss"  # the per-epoch series in ``Fitted.history``
CONTINUES = "epochs"  # the budget a longer training continues along (``features.stage``)
# Keras' ``fit`` makes two iterators of the data per epoch (one at its start, one at its end:
# the shuffle seed of the second is never used) after one to build the model. A continued
# training makes those of the epochs already trained first, so that its epochs draw the seeds a
# straight training's would (tests/test_published.py checks this against a straight training).
ITERATORS_PER_EPOCH = 2


@dataclass
class Params:
    """The network and its training (also n2d's first part)."""

    hidden: list[int] = MISSING
    code_size: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    learning_rate: float = MISSING
    optimizer: Optimizer = MISSING
    momentum: float = MISSING  # SGD's; 0 with Adam
    kernel_init: KernelInit = MISSING
    precision: Precision = MISSING

    def check(self) -> None:
        for i, size in enumerate(self.hidden):
            options.at_least(f"features.hidden[{i}]", size, 1, "units of a hidden layer")
        options.at_least("features.code_size", self.code_size, 1, "the code's width")
        options.at_least("features.epochs", self.epochs, 1)
        options.at_least("features.batch_size", self.batch_size, 1)
        options.positive("features.learning_rate", self.learning_rate)
        options.momentum("features.momentum", self.momentum)
        if self.optimizer is Optimizer.adam and self.momentum != 0:
            raise ConfigError(
                f"features.momentum={self.momentum}: only SGD takes a momentum "
                "(features.optimizer=sgd), Adam's must be 0"
            )


@dataclass
class Config(FittedFeatures, Params):
    KIND: typing.ClassVar[str] = "autoencoder"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check()


@dataclass(frozen=True)
class Trained:
    """A training's result, and what continuing it needs."""

    encoder: Dense
    decoder: Dense
    losses: list[float]  # after each epoch, from the first (continued epochs included)
    optimizer: list[np.ndarray]  # the optimiser's variables, in Keras' order

    @property
    def epochs(self) -> int:
        return len(self.losses)

    def fitted(self) -> Fitted:
        """As a kind's fit returns it: the encoder step, the loss, the decoder and optimiser."""
        state = {f"{OPTIMIZER}/{i:04d}": value for i, value in enumerate(self.optimizer)}
        arrays = self.decoder.arrays(DECODER) | state
        return Fitted([self.encoder], history={LOSS: self.losses}, arrays=arrays)

    @classmethod
    def from_fitted(cls, fitted: Fitted) -> Trained:
        """The training behind a cached result (``fitted()``'s inverse)."""
        names = sorted(name for name in fitted.arrays if name.startswith(f"{OPTIMIZER}/"))
        decoder = Dense.from_arrays(fitted.arrays, DECODER)
        optimizer = [fitted.arrays[name] for name in names]
        return cls(fitted.steps[0], decoder, list(fitted.history[LOSS]), optimizer)


def fit(config: Config, x: np.ndarray, previous: Fitted | None = None) -> Fitted:
    """Train on float rows ``x`` (continuing ``previous``, a shorter training of the same recipe
    on the same rows, when given): the encoder step, the loss per epoch, the decoder's arrays and
    the optimiser's state."""
    start = None if previous is None else Trained.from_fitted(previous)
    return train(config, x, start=start).fitted()


def train(
    config: Params,
    x: np.ndarray,
    seed: int | None = None,
    jit_compile: bool = True,
    on_epoch_end: Callable[[int, Dense, Dense], None] | None = None,
    start: Trained | None = None,
) -> Trained:
    """Train for ``config.epochs`` epochs in all: from scratch, or on from ``start``.

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
    done = 0 if start is None else start.epochs
    if done >= epochs:
        raise ValueError(f"cannot continue a {done}-epoch training to {epochs} epochs")
    keras.utils.set_random_seed(seed)
    policy = _policy(config.precision)

    def dense(units: int, activation: str | None = None, **kwargs) -> keras.layers.Dense:
        init = _kernel_init(config.kernel_init)
        return keras.layers.Dense(units, activation, kernel_initializer=init, **kwargs)

    width = x.shape[1]
    inputs = keras.Input((width,))
    h = inputs
    for units in config.hidden:
        h = dense(units, "relu", dtype=policy)(h)
    h = dense(config.code_size, name="code", dtype=policy)(h)
    for units in reversed(config.hidden):
        h = dense(units, "relu", dtype=policy)(h)
    outputs = dense(width, dtype="float32")(h)  # the loss in float32
    model = keras.Model(inputs, outputs)
    optimizer = _optimizer(config)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    n_encoder = len(config.hidden) + 1  # dense layers up to and including the code
    data = tf.data.Dataset.from_tensor_slices((x, x))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(config.batch_size)
    losses: list[float] = []
    if start is not None:
        _restore(model, optimizer, start, n_encoder)
        for _ in range(ITERATORS_PER_EPOCH * done):
            iter(data)  # each draws a shuffle seed from the pipeline's seeded generator
        losses = list(start.losses)
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

    callback = keras.callbacks.LambdaCallback(on_epoch_end=report)
    model.fit(  # shuffled above
        data, epochs=epochs, initial_epoch=done, shuffle=False, verbose=0, callbacks=[callback]
    )
    return Trained(
        dense_stack(model.layers, 0, n_encoder),
        dense_stack(model.layers, n_encoder, 2 * n_encoder),
        losses,
        [np.array(v.numpy()) for v in optimizer.variables],
    )


def _optimizer(config: Params):
    import keras

    if config.optimizer is Optimizer.sgd:
        return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
    return keras.optimizers.Adam(config.learning_rate)


def _kernel_init(kernel_init: KernelInit):
    """A new initializer per layer (one instance reused would repeat its draws): Keras' default,
    or DEC-keras's VarianceScaling(1/3, fan_in, uniform); both seeded by the global seed."""
    import keras

    if kernel_init is KernelInit.glorot_uniform:
        return keras.initializers.GlorotUniform()
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


def _restore(model, optimizer, start: Trained, n_encoder: int) -> None:
    """Set the weights and the optimiser's state of a training to continue."""
    dense = [layer for layer in model.layers if hasattr(layer, "kernel")]
    arrays = [(start.encoder, dense[:n_encoder]), (start.decoder, dense[n_encoder:])]
    for stack, layers in arrays:
        for layer, kernel, bias in zip(layers, stack.weights, stack.biases, strict=True):
            layer.kernel.assign(kernel)
            layer.bias.assign(bias)
    optimizer.build(model.trainable_variables)
    for variable, value in zip(optimizer.variables, start.optimizer, strict=True):
        variable.assign(value)


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
