"""A grid of runs over any config fields x seeds, resumable, with a summary table.

  python launch/sweep.py --config=configs/ml100k.py \
      --grid="beta=0.05,0.1,0.2;pool_size=16,32" --seeds=5 --out=results/ml100k_beta

Extra `--config.field=value` flags change the base config (e.g.
`--config.num_epochs=100`), parsed by ml_collections as for `pdns_jax.main`.
Grid values are typed the same way. Each run trains into `<out>/runs/<run name>/`;
points that differ only in seed, beta, alpha, l2 or learning_rate train
together as one vmapped replica run (`--vmap=auto`, the default; `no` trains
each point and seed alone; `yes` insists on grouping). Every run's config is
checked before the first one trains. Re-running the same command skips
finished runs and resumes an interrupted one (or one whose summary.json is
cut short) from its checkpoint.

Writes `<out>/runs.csv` (one row per run and replica: the varied fields, seed,
best epoch, valid and test metrics at the best validation epoch, seconds) and
`<out>/aggregate.md` (mean and standard deviation over seeds per setting, the
best setting chosen by validation Recall@50 and marked). A bad flag, field or
value stops with one `error:` line and exit status 2.
"""

from absl import flags
from ml_collections import config_flags

from pdns_jax import cli
from pdns_jax.experiments import grid
from pdns_jax.experiments import sweep


def main():
  """The command line (flags are defined here so that importing defines none)."""
  config = config_flags.DEFINE_config_file(
      "config", None, "Base config file with optional :arg, e.g. configs/ml100k.py:mf.",
      lock_config=True)
  grid_text = flags.DEFINE_string(
      "grid", "", "Axes 'field=v1,v2;field2=v1,v2' (dotted names for nested fields).")
  seeds = flags.DEFINE_integer("seeds", 1, "Seeds per point: config.seed, config.seed+1, ...")
  out = flags.DEFINE_string("out", None, "Output folder (runs/, runs.csv, aggregate.md).")
  vmap = flags.DEFINE_enum("vmap", "auto", grid.VMAP_MODES,
                           "Train replica-only variation as one vmapped run.")
  flags.mark_flags_as_required(["config", "out"])

  def body():
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    sweep.run_sweep(config.value, grid_text.value, seeds=seeds.value, out=out.value,
                    vmap=vmap.value, title=f"Sweep of {config_file}" + (
                        f" over {grid_text.value}" if grid_text.value else ""))
  cli.run(body)


if __name__ == "__main__":
  main()
