"""MLflow, and only here: the store, each experiment's run, and a sweep's parent run.

Nothing else in kmeans_exp imports ``mlflow``; nothing here imports TensorFlow. ``mlflow`` itself
is imported inside the functions that need it, so that ``--help``, config errors and runs with
``tracking.enabled=false`` never pay for it.
"""

from kmeans_exp.tracking.parent_run import (
    SWEEP_ENV,
    SweepContext,
    close_parent,
    find_sweep,
    job_rows,
    open_parent,
    record_failed_job,
    record_reused_job,
    swept_tags,
)
from kmeans_exp.tracking.run import (
    ExperimentRun,
    StepMetrics,
    Terminated,
    experiment_run,
    mlflow_run,
    raise_terminated,
    run_tags,
)
from kmeans_exp.tracking.store import (
    CONFIG_HASH_TAG,
    DEFAULT_URI,
    Store,
    check_store,
    find_finished,
    git_commit,
    open_store,
    resolve_uri,
    run_url,
    setup_experiment,
    use_store,
)

__all__ = [
    "CONFIG_HASH_TAG",
    "DEFAULT_URI",
    "SWEEP_ENV",
    "ExperimentRun",
    "StepMetrics",
    "Store",
    "SweepContext",
    "Terminated",
    "check_store",
    "close_parent",
    "experiment_run",
    "find_finished",
    "find_sweep",
    "git_commit",
    "job_rows",
    "mlflow_run",
    "open_parent",
    "open_store",
    "raise_terminated",
    "record_failed_job",
    "record_reused_job",
    "resolve_uri",
    "run_tags",
    "run_url",
    "setup_experiment",
    "swept_tags",
    "use_store",
]
