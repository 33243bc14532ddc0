"""Monitoring statistics: reference profiles, drift tests, checks of a batch and their reports.

Pure functions over numpy arrays and pandas/pyarrow chunks; nothing here loads a model, reads a
spec file or writes to the repository. Importing this package imports nothing heavy: each module
imports numpy, scipy, pandas or pyarrow when it is imported itself, so only the monitor stage and
the ``mlopsctl monitor`` command should import them (never ``plan``, ``validate`` or ``graph``).
"""
