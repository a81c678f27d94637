"""``python -m kmeans_exp [overrides]``: see ``kmeans_exp.hydra_app.app``."""

from kmeans_exp.hydra_app.app import main

if __name__ == "__main__":
    main()
