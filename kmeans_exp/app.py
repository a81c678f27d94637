"""The Hydra application behind ``python -m kmeans_exp``: thin, returns the validation accuracy.

Configs live in the top-level ``conf/`` of a source checkout and inside the package
(``kmeans_exp/conf``) in an installed wheel; whichever exists is used. Heavy imports (TensorFlow,
MLflow) happen inside the task, so ``--help`` and config errors answer at once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from kmeans_exp.config import register_schema
from kmeans_exp.errors import KMeansExpError
from kmeans_exp.tracking import Terminated

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent
CONFIG_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"


class UserError(CompactHydraException):
    """A mistake the user can fix; Hydra prints just its one-line message."""


register_schema()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one experiment and return its validation accuracy (what a sweeper optimises)."""
    from kmeans_exp import runner

    try:
        return runner.run(cfg)
    except KMeansExpError as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (tracking.Terminated)
        terminated = isinstance(e, Terminated)
        log.error("%s: the MLflow run ended KILLED", "terminated" if terminated else "interrupted")
        sys.exit(143 if terminated else 130)
