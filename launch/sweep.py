"""A grid of runs over any config fields x seeds, resumable, with a summary table.

  python launch/sweep.py --config=configs/ml100k.py \
      --grid="beta=0.05,0.1,0.2;pool_size=16,32" --seeds=5 --out=results/ml100k_beta

Extra `--config.field=value` flags change the base config (e.g.
`--config.num_epochs=100`). Each run trains into `<out>/runs/<run name>/`;
points that differ only in seed, beta, alpha, l2 or learning_rate train
together as one vmapped replica run (`--vmap=auto`, the default; `no` trains
each point and seed alone; `yes` insists on grouping). Re-running the same
command skips finished runs and resumes an interrupted one from its checkpoint.

Writes `<out>/runs.csv` (one row per run and replica: the varied fields, seed,
best epoch, valid and test metrics at the best validation epoch, seconds) and
`<out>/aggregate.md` (mean and standard deviation over seeds per setting, the
best setting chosen by validation Recall@50 and marked).
"""

import pathlib
import sys

from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from pdns_jax import experiments  # pylint: disable=g-import-not-at-top


def sweep(config_spec: str, grid: str, seeds: int, out: str, vmap: str = "auto",
          overrides=()) -> list[dict]:
  """Runs the sweep and writes runs.csv and aggregate.md into `out`.

  Args:
    config_spec: config file with optional `:arg`.
    grid: axes text, see `experiments.parse_grid`.
    seeds: seeds per grid point.
    out: output folder.
    vmap: auto | yes | no.
    overrides: (field, value) pairs applied to the base config first.

  Returns:
    The rows of runs.csv.
  """
  config = experiments.with_overrides(experiments.load_config(config_spec), overrides)
  axes = experiments.typed_axes(config, experiments.parse_grid(grid))
  runs = experiments.plan_runs(config, axes, seeds=seeds, vmap=vmap)
  out = pathlib.Path(out)
  rows = experiments.run_grid(config, runs, out / "runs")
  experiments.write_csv(rows, out / "runs.csv")
  title = f"Sweep of {config_spec}" + (f" over {grid}" if grid else "")
  (out / "aggregate.md").write_text(
      experiments.aggregate_markdown(rows, [field for field, _ in axes], title))
  print(f"wrote {out / 'runs.csv'} and {out / 'aggregate.md'}")
  return rows


def main():
  """The command line (flags are defined here so that importing defines none)."""
  config = flags.DEFINE_string(
      "config", None, "Base config file with optional :arg, e.g. configs/ml100k.py:mf.")
  grid = flags.DEFINE_string(
      "grid", "", "Axes 'field=v1,v2;field2=v1,v2' (dotted names for nested fields).")
  seeds = flags.DEFINE_integer("seeds", 1, "Seeds per point: config.seed, config.seed+1, ...")
  out = flags.DEFINE_string("out", None, "Output folder (runs/, runs.csv, aggregate.md).")
  vmap = flags.DEFINE_enum("vmap", "auto", experiments.VMAP_MODES,
                           "Train replica-only variation as one vmapped run.")
  flags.mark_flags_as_required(["config", "out"])
  experiments.run_cli(lambda overrides: sweep(
      config.value, grid.value, seeds.value, out.value, vmap.value, overrides))


if __name__ == "__main__":
  main()
