"""Print the accuracy bands that the tests assert, from runs over seeds (about a minute).

    python benchmarks/accuracy_bands.py

- Tutorial settings (k=25, cosine, random init, the whole training set as the mini-batch,
  50 steps), seeds 0-4, run by TensorFlow's legacy op and by this engine from the same
  initial centres. The band is [lowest - 0.01, highest + 0.01] over both, in hundredths:
  wide enough for any seed of either, narrow enough to catch a broken update rule.
- Default settings (k=25, cosine, k-means++, 15 full-batch steps), seeds 0-4, this engine.
  The floor is the median rounded down to a hundredth, less 0.005 of slack.

Test accuracy is majority-label accuracy on the 10,000 test images; training uses the 55,000
images after the first 5,000 (the tutorial's split).
"""

from __future__ import annotations

# isort: off
import common  # first: it pins the BLAS thread pools before NumPy loads

# isort: on
import math

import numpy as np
from common import K, nearest_cosine

from kmeans_exp.engine import KMeans
from kmeans_exp.engine.legacy_op import legacy_train

SEEDS = range(5)


def main() -> None:
    bench = common.load_data(quick=False)
    x, pixels, pixels_test = bench.x, bench.pixels, bench.pixels_test  # runs give uint8 pixels

    def accuracy(train_idx, test_idx) -> float:
        return common.majority_accuracy(train_idx, test_idx, bench)

    tutorial = {"legacy op": [], "this engine": []}
    for seed in SEEDS:
        ours = KMeans(K, init="random", use_mini_batch=True, batch_size=None, seed=seed)
        ours.initialize(pixels)
        init = ours.cluster_centers_
        ours.fit(pixels, 50, initial_centers=init)
        tutorial["this engine"].append(accuracy(ours.labels_, ours.predict(pixels_test)))
        legacy = legacy_train(x, init, "cosine", True, [x] * 50, threads=2)
        train_idx = nearest_cosine(x, legacy.centers)
        test_idx = nearest_cosine(bench.x_test, legacy.centers)
        tutorial["legacy op"].append(accuracy(train_idx, test_idx))
    for name, accs in tutorial.items():
        print(f"tutorial, {name}: " + " ".join(f"{a:.4f}" for a in accs))
    every = [a for accs in tutorial.values() for a in accs]
    low = math.floor((min(every) - 0.01) * 100) / 100
    high = math.ceil((max(every) + 0.01) * 100) / 100
    print(f"TUTORIAL_BAND = ({low:.2f}, {high:.2f})")

    default = []
    for seed in SEEDS:
        model = KMeans(K, seed=seed).fit(pixels, 15)
        default.append(accuracy(model.labels_, model.predict(pixels_test)))
    median = float(np.median(default))
    print("default: " + " ".join(f"{a:.4f}" for a in default) + f" (median {median:.4f})")
    print(f"DEFAULT_MEDIAN_FLOOR = {math.floor((median - 0.005) * 100) / 100:.2f}")


if __name__ == "__main__":
    main()
