"""Grids of training runs and the paper's experiments (library code).

  grid.py     plans runs: grid axes x seeds -> PlannedRun, replica-only variation vmapped
  runner.py   checks every planned config, then trains or reuses each run -> rows
  tables.py   runs.csv, mean ± std over seeds, model selection, markdown tables
  sweep.py    a sweep over any fields: plan, run, write runs.csv and aggregate.md
  paper.py    the paper's experiments (PAPER.md 8): configs, grids, tables, figures

`launch/sweep.py` and `launch/paper.py` are their command lines; notebooks
import these modules directly.
"""
