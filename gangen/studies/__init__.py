"""Runnable studies: ``python -m gangen.studies.<name> [--preset quick|paper] [--out DIR]``.

Every study is declared with :class:`gangen.studies.runner.Study` and shares the
runner's CLI, cell cache (resume after any interruption), output layout
(``DIR/studies/<name>/results.csv``, ``config.json``, ``summary.json``;
``DIR/figures/<name>.pdf|png``) and the paper style of :mod:`gangen.plotting`.
:mod:`gangen.studies._toy` is a minimal, complete study to copy from.

Importing this package imports nothing else.
"""
