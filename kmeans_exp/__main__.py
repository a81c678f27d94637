"""``python -m kmeans_exp [overrides]``: see ``kmeans_exp.app``."""

from kmeans_exp.app import main

if __name__ == "__main__":
    main()
