"""The refinement stage, after the K-Means (``refine=dec``, ``refine=idec``; default ``none``).

- ``kinds``: one module per refinement, each with its schema and its fit;
- ``student_t``: the clustering layer (Student-t soft assignment, target distribution) and the
  training loop that DEC and IDEC share (Keras 3 on TensorFlow);
- ``stage``: ``refine(...)``, which runs a refinement or reads it from the cache, and the
  refined clusters that evaluation scores.
"""
