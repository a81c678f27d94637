"""The clustering layer of DEC and IDEC, and the training loop they share (Keras 3 on TF).

- ``soft_assignment``: q_ij ∝ (1 + ‖z_i − μ_j‖² / α)^(−(α+1)/2), α = 1 (Student's t);
- ``target_distribution``: p_ij ∝ q_ij² / f_j with f_j = Σ_i q_ij, each row summing to 1:
  it sharpens confident assignments and weighs clusters by their size;
- ``train``: the centres μ start at the K-Means centres on the codes. Every
  ``update_interval`` batches, q is computed for every fit row, P recomputed from it, and
  training stops once fewer than ``tol`` of the rows changed cluster (argmax q) since the last
  update (no labels), or after ``max_iter`` batches. Each batch minimises KL(P‖Q) (DEC), or
  MSE(reconstruction) + gamma · KL(P‖Q) (IDEC, whose decoder trains too).

Batches walk a seeded permutation of the rows, a new one per pass (``shuffle``), or the rows in
order as DEC-keras takes them, the last batch of a pass short; the step is XLA-compiled.
On the CPU the same seed gives the same result.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from kmeans_exp.features.kinds.autoencoder import dense_stack
from kmeans_exp.features.served_steps import Dense
from kmeans_exp.refine.kinds import ClusteringParams, Refined, Start

log = logging.getLogger(__name__)

ALPHA = 1.0  # the Student-t's degrees of freedom, as published
PREDICT_ROWS = 8192  # rows per batch when q is computed for every row


def soft_assignment(z: Any, centres: Any) -> Any:
    """q (n, k): Student-t similarity of each code to each centre, rows summing to 1."""
    from kmeans_exp.tf_runtime import tf

    distances = tf.reduce_sum(tf.square(z[:, None, :] - centres[None, :, :]), axis=2)
    q = tf.pow(1.0 + distances / ALPHA, -(ALPHA + 1.0) / 2.0)
    return q / tf.reduce_sum(q, axis=1, keepdims=True)


def target_distribution(q: Any) -> Any:
    """P (n, k) from q: squared, divided by each cluster's soft size, rows summing to 1."""
    from kmeans_exp.tf_runtime import tf

    weight = tf.square(q) / tf.reduce_sum(q, axis=0)
    return weight / tf.reduce_sum(weight, axis=1, keepdims=True)


def kl_divergence(p: Any, q: Any) -> Any:
    """KL(P‖Q): summed over the clusters, averaged over the rows (Keras' ``kld``)."""
    from kmeans_exp.tf_runtime import tf

    return tf.reduce_mean(tf.reduce_sum(p * tf.math.log(p / q), axis=1))


def train(
    config: ClusteringParams,
    start: Start,
    optimizer: tuple[str, dict[str, float]],
    gamma: float | None,
    seed: int,
) -> Refined:
    """Train the encoder (and the decoder when ``gamma`` is set: IDEC) and the centres.

    ``optimizer`` is a Keras optimizer's name and arguments. The result's history has one
    value per target update: ``refine_loss`` (mean training loss since the previous update),
    ``refine_label_change`` (fraction of rows whose cluster changed) and ``refine_kl``
    (KL(P‖Q) over every row with the new target: it falls as the assignments grow confident).
    """
    # isort: off
    from kmeans_exp.tf_runtime import tf  # first: TensorFlow quietly
    import keras

    # isort: on

    keras.utils.set_random_seed(seed)
    encoder = _keras_stack(keras, start.encoder)
    decoder = _keras_stack(keras, start.decoder) if gamma is not None else None
    centres = tf.Variable(start.centres.astype(np.float32), name="centres")
    name, arguments = optimizer
    opt = getattr(keras.optimizers, name)(**arguments)
    trained = [*encoder.trainable_variables, centres]
    if decoder is not None:
        trained += decoder.trainable_variables
    x = tf.constant(start.rows, tf.float32)
    n = len(start.rows)

    @tf.function(jit_compile=True)
    def step(rows, p):
        with tf.GradientTape() as tape:
            z = encoder(rows, training=True)
            kl = kl_divergence(p, soft_assignment(z, centres))
            loss = kl
            if decoder is not None:
                mse = tf.reduce_mean(tf.square(decoder(z, training=True) - rows))
                loss = mse + gamma * kl
        opt.apply_gradients(zip(tape.gradient(loss, trained), trained, strict=True))
        return loss

    @tf.function(jit_compile=True)
    def assign(rows):
        return soft_assignment(encoder(rows, training=False), centres)

    def all_q():
        return tf.concat([assign(x[i : i + PREDICT_ROWS]) for i in range(0, n, PREDICT_ROWS)], 0)

    rng = np.random.default_rng(seed)
    order = rng.permutation(n) if config.shuffle else np.arange(n)
    position = 0
    labels = None
    losses: list[float] = []
    history: dict[str, list[float]] = {
        "refine_loss": [],
        "refine_label_change": [],
        "refine_kl": [],
    }
    started = time.perf_counter()
    for iteration in range(config.max_iter + 1):
        if iteration % config.update_interval == 0 or iteration == config.max_iter:
            q = all_q()
            p = target_distribution(q)
            new_labels = np.argmax(q.numpy(), axis=1)
            if labels is not None:
                change = float(np.mean(new_labels != labels))
                history["refine_loss"].append(float(np.mean(losses)))
                history["refine_label_change"].append(change)
                history["refine_kl"].append(float(kl_divergence(p, q)))
                log.info(
                    "%s batch %d/%d: loss %.5f, %.4f of the rows changed cluster (%.1fs)",
                    config.kind,
                    iteration,
                    config.max_iter,
                    history["refine_loss"][-1],
                    change,
                    time.perf_counter() - started,
                )
                losses = []
                if change < config.tol:
                    break
            labels = new_labels
        if iteration == config.max_iter:
            break
        if config.shuffle and position + config.batch_size > n:  # a new order, no short batch
            order, position = rng.permutation(n), 0
        rows = order[position : position + config.batch_size]
        position += config.batch_size
        if position >= n:  # in order (DEC-keras's way): every row, the last batch short
            position = 0
        losses.append(float(step(tf.gather(x, rows), tf.gather(p, rows))))
    trained_encoder = dense_stack(encoder.layers, 0, len(start.encoder.weights))
    return Refined(trained_encoder, centres.numpy(), history)


def _keras_stack(keras: Any, stack: Dense) -> Any:
    """A Keras model of ``stack``'s dense layers (ReLU between them), with its weights."""
    layers = []
    last = len(stack.weights) - 1
    for i, w in enumerate(stack.weights):
        layers.append(keras.layers.Dense(w.shape[1], activation="relu" if i < last else None))
    model = keras.Sequential([keras.Input((stack.weights[0].shape[0],)), *layers])
    for layer, w, b in zip(layers, stack.weights, stack.biases, strict=True):
        layer.set_weights([w, b])
    return model
