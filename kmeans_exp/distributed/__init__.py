"""One K-Means fit on N worker processes (``distributed=local|ray|slurm``).

- ``cluster``: each worker's place in the cluster, as ``TF_CONFIG`` (local ports, Ray actors,
  or SLURM's task layout through TensorFlow's ``SlurmClusterResolver``);
- ``collective``: the all-reduce between workers (``MultiWorkerMirroredStrategy``);
- ``worker``: what each worker process runs (``python -m kmeans_exp.distributed.worker``);
- ``launch``: the command's side: it owns the MLflow run, starts the workers, watches them and
  ends the run FINISHED, FAILED or KILLED.

Nothing here is imported by a single-process run.
"""
