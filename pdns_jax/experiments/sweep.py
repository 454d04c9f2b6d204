"""A sweep: a grid over any config fields x seeds, run resumably, summarised.

Library code of `launch/sweep.py` (see its docstring for the command line).
"""

from __future__ import annotations

import pathlib

from pdns_jax.experiments import grid as grid_lib
from pdns_jax.experiments import runner
from pdns_jax.experiments import tables


def run_sweep(config, grid: str, *, seeds: int, out: str | pathlib.Path,
              vmap: str = "auto", title: str = "Sweep") -> list[dict]:
  """Runs the sweep and writes `<out>/runs.csv` and `<out>/aggregate.md`.

  Every run's config is checked before the first one trains.

  Args:
    config: the base config (its seed is the first seed).
    grid: axes text, see `grid.parse_grid`.
    seeds: seeds per grid point.
    out: output folder (runs train into `<out>/runs/`).
    vmap: auto | yes | no (see `grid.plan_runs`).
    title: heading of aggregate.md.

  Returns:
    The rows of runs.csv.

  Raises:
    ConfigError: a bad grid, value, --seeds, --vmap or --out, naming it.
  """
  out = runner.output_folder(out)
  axes = grid_lib.parse_grid(grid, config)
  runs = grid_lib.plan_runs(config, axes, seeds=seeds, vmap=vmap)
  rows = runner.run_grid(config, runs, out / "runs")
  tables.write_csv(rows, out / "runs.csv")
  (out / "aggregate.md").write_text(
      tables.aggregate_markdown(rows, [field for field, _ in axes], title))
  print(f"wrote {out / 'runs.csv'} and {out / 'aggregate.md'}")
  return rows
