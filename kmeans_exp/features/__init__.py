"""The representation stage, between the data and the engine: what the K-Means clusters.

- ``kinds``: one module per representation (``raw``, ``pca``, ``umap``, ``autoencoder``,
  ``n2d``, ``precomputed``), each with its schema and its fit;
- ``stage``: ``represent(config, splits, seed)``, which fits a kind or reads it from the cache;
- ``cache``: fitted representations on disk;
- ``served_steps``: a fitted representation as NumPy steps, which the served model carries.
"""
