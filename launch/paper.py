"""The paper's experiments (PAPER.md section 8): runs, a markdown table and figures.

  python launch/paper.py --experiment=overfitting --dataset=ml100k --model=mf \
      --out=results/overfitting_ml100k_mf [--scale=smoke|paper]

Experiments (each on one dataset; `comparison` takes a comma list):
  overfitting      DNS with H in {8, 16, 32, 64}: test Recall@50 per epoch (Fig. 2a-b).
  mixing           DNS + positive mixing with a fixed alpha in {0, ..., 0.9} (Fig. 2c-d).
  false_negatives  4:1:1 split, DNS; reveal a share c of the FN set to the sampler,
                   20% every 50 epochs from the paper's first reveal epoch (Fig. 3).
  comparison       RNS, DNS, MixGCF (LightGCN only), PDNS; Recall/NDCG@50 and the
                   improvement of PDNS over the best baseline (Table 2 layout).
  robustness       PDNS vs DNS vs MixGCF training curves under LightGCN (Fig. 4a-c).
  hardness         H in {8, 16, 32, 64} for DNS and PDNS (Table 3, Fig. 4d-f).
  soft_factor      PDNS with beta in {0.01, 0.05, 0.1, 0.2, 0.3, 0.4} (Table 4).

Writes `<out>/table.md`, `<out>/<experiment>.png` and `<out>/runs.csv`; runs
train into `<out>/runs/` and are reused when finished (interrupted ones resume),
exactly as in `launch/sweep.py`; the code is `pdns_jax/experiments/paper.py`.
Tables give mean ± std over seeds of the test metrics at each run's best
validation epoch; figures average the seeds' curves (shaded: ± one std) and add
a false-negative hit-rate panel whenever the split has an FN set.

Scales: `paper` (default) is the paper's protocol: the dataset config's
settings and epochs, 5 seeds; curve experiments train without early stopping,
since the curve's shape is the result. `smoke` runs the same pipeline on the
`:smoke` configs for 4 epochs, 1 seed, numeric grid axes cut to their first
and last values, in seconds (for CI). `--config.field=value` flags override the
config last, e.g. `--config.num_epochs=100` for a reduced run: ml_collections
parses them against configs/default.py (every dataset config has its fields)
and the values it parsed are set on each dataset's config. A bad flag, field
or value stops with one `error:` line and exit status 2.
"""

from absl import flags
from ml_collections import config_flags

from configs import default
from pdns_jax import cli
from pdns_jax.experiments import grid
from pdns_jax.experiments import paper


def main():
  """The command line (flags are defined here so that importing defines none)."""
  experiment = flags.DEFINE_enum("experiment", None, list(paper.EXPERIMENTS),
                                 "Which experiment.")
  dataset = flags.DEFINE_string("dataset", "ml100k",
                                "Dataset (a comma list for --experiment=comparison).")
  model = flags.DEFINE_enum("model", "lightgcn", list(paper.MODEL_NAMES), "Model.")
  out = flags.DEFINE_string("out", None, "Output folder.")
  scale = flags.DEFINE_enum("scale", "paper", paper.SCALES,
                            "smoke: seconds, for CI; paper: the paper's protocol.")
  seeds = flags.DEFINE_integer("seeds", None,
                               "Seeds per setting (default: 1 smoke, 5 paper).")
  split = flags.DEFINE_enum("split", None, ["paper", "fn"],
                            "Override the dataset's split (fn: 4:1:1 with an FN set).")
  reveal_start = flags.DEFINE_integer(
      "reveal_start", None, "false_negatives: first reveal epoch (default: the paper's).")
  vmap = flags.DEFINE_enum("vmap", "auto", grid.VMAP_MODES,
                           "Train seeds and replica fields as one vmapped run.")
  search = flags.DEFINE_string(
      "search", "", "comparison: grid 'field=v1,v2;...' searched for every sampler "
      "(beta for PDNS only), each cell chosen by validation Recall@50.")
  # Only for `--config.field=value`: the experiment builds one config per dataset.
  with cli.flag_errors():  # the overrides are parsed here already
    config_flags.DEFINE_config_dict(
        "config", default.get_config(), "Overrides --config.field=value, set on every "
        "dataset's config last.", lock_config=True)
  flags.mark_flags_as_required(["experiment", "out"])

  def body():
    overrides = config_flags.get_override_values(flags.FLAGS["config"])
    paper.run_experiment(
        experiment.value, dataset.value.split(","), model.value, out.value, scale.value,
        seeds.value, split.value, reveal_start.value, vmap.value, list(overrides.items()),
        search.value)
  cli.run(body)


if __name__ == "__main__":
  main()
