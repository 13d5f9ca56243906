"""Experiments that combine training, attacks and evaluation into the paper's tables and figures.

``table2`` (the training grid and Table 2), ``tables34`` (Tables 3-4), ``ablations``,
``figure3`` and ``quickstart``; results are written under ``results/`` with their commands.
Their budgets and defaults are declared once, in ``presets``.
"""
