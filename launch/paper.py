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
exactly as in `launch/sweep.py`, whose code this shares (pdns_jax/experiments.py).
Tables give mean ± std over seeds of the test metrics at each run's best
validation epoch; figures average the seeds' curves (shaded: ± one std) and add
a false-negative hit-rate panel whenever the split has an FN set.

Scales: `paper` (default) is the paper's protocol: the dataset config's
settings and epochs, 5 seeds; curve experiments train without early stopping,
since the curve's shape is the result. `smoke` runs the same pipeline on the
`:smoke` configs for 4 epochs, 1 seed, numeric grid axes cut to their first
and last values, in seconds (for CI). `--config.field=value` flags override the
config last, e.g. `--config.num_epochs=100` for a reduced run.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Sequence

from absl import flags
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top
from pdns_jax import experiments
from pdns_jax import plot

SCALES = ("smoke", "paper")
SMOKE_EPOCHS = 4
PAPER_SEEDS = 5
# The paper's first reveal epoch per (dataset, model) (PAPER.md 8.3).
FIRST_REVEAL = {("ml100k", "mf"): 150, ("douban", "mf"): 220,
                ("ml100k", "lightgcn"): 100, ("douban", "lightgcn"): 100}
REVEAL_EVERY = 50
REVEAL_STAGES = 5  # 20% subsets
DATASET_NAMES = {"ml100k": "Movielens-100k", "douban": "Douban", "gowalla": "Gowalla",
                 "taobao": "Taobao", "tmall": "Tmall", "synthetic": "Synthetic"}
MODEL_NAMES = {"mf": "MF", "lightgcn": "LightGCN"}
SAMPLER_NAMES = {"rns": "RNS", "dns": "DNS", "pdns": "PDNS", "mixgcf": "MixGCF",
                 "mix": "DNS+mixing"}


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What an experiment varies and fixes, and how its results are laid out.

  Attributes:
    title: heading of the table and the figure (with the paper's reference).
    axes: grid axes (config field, values).
    fixed: (config field, value) pairs set on the dataset config.
    curves: the training curve is the result: train without early stopping.
    rows: the field whose values are the table's rows in a pivot table.
    columns: the field whose values are column groups of a pivot table (the
      figure then has one panel per value); None for a plain settings table.
  """

  title: str
  axes: tuple
  fixed: tuple = ()
  curves: bool = False
  rows: str | None = None
  columns: str | None = None


EXPERIMENTS = {
    "overfitting": Experiment(
        "Over-fitting of DNS (Sec. 2.2, Fig. 2a-b)",
        axes=(("pool_size", (8, 16, 32, 64)),), fixed=(("sampler", "dns"),),
        curves=True),
    "mixing": Experiment(
        "DNS with positive mixing, fixed alpha (Sec. 3.1, Fig. 2c-d)",
        axes=(("alpha", tuple(a / 10 for a in range(10))),), fixed=(("sampler", "mix"),),
        curves=True),
    "false_negatives": Experiment(
        "Revealing false negatives to DNS (Sec. 4.2, Fig. 3)",
        axes=(("reveal_fraction", (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),),
        fixed=(("sampler", "dns"), ("split", "fn")), curves=True),
    "comparison": Experiment(
        "Comparison of samplers (Table 2)",
        axes=(("sampler", ("rns", "dns", "mixgcf", "pdns")),),
        rows="sampler", columns="dataset"),
    "robustness": Experiment(
        "Robustness: PDNS vs DNS vs MixGCF (Fig. 4a-c)",
        axes=(("sampler", ("pdns", "dns", "mixgcf")),), curves=True),
    "hardness": Experiment(
        "Hardness level H (Table 3, Fig. 4d-f)",
        axes=(("sampler", ("dns", "pdns")), ("pool_size", (8, 16, 32, 64))),
        rows="pool_size", columns="sampler"),
    "soft_factor": Experiment(
        "Soft factor beta of PDNS (Table 4)",
        axes=(("beta", (0.01, 0.05, 0.1, 0.2, 0.3, 0.4)),), fixed=(("sampler", "pdns"),)),
}


SYMBOLS = {"pool_size": "H", "alpha": "α", "beta": "β", "reveal_fraction": "c"}


def value_text(field: str, value) -> str:
  """A value as the paper writes it: sampler and dataset names, plain numbers."""
  names = {"sampler": SAMPLER_NAMES, "dataset": DATASET_NAMES}.get(field, {})
  return names.get(value, experiments.format_value(value))


def describe(field: str, value) -> str:
  """A setting in legends and tables: `H=32`, `c=0.2`, `PDNS`."""
  if field in ("sampler", "dataset"):
    return value_text(field, value)
  text = f"{SYMBOLS.get(field, field)}={value_text(field, value)}"
  return text + " (DNS)" if field == "alpha" and value == 0 else text


def _label(setting: dict) -> str:
  return ", ".join(describe(f, v) for f, v in setting.items() if f != "seed")


def dataset_config(dataset: str, model: str, scale: str):
  """configs/<dataset>.py for `model` at `scale` (its `mf` and `smoke` variants)."""
  if dataset == "synthetic":  # one variant only; the model is set as a field
    arg = "smoke" if scale == "smoke" else ""
  else:
    arg = ",".join(v for v, on in (("mf", model == "mf"), ("smoke", scale == "smoke"))
                   if on)
  config = experiments.load_config(f"configs/{dataset}.py" + (f":{arg}" if arg else ""))
  return experiments.with_overrides(config, [("model", model)])


def experiment_config(name: str, dataset: str, model: str, scale: str,
                      split: str | None = None, reveal_start: int | None = None,
                      overrides: Sequence[tuple[str, str]] = ()):
  """The base config of one experiment on one dataset, before the grid."""
  spec = EXPERIMENTS[name]
  config = experiments.with_overrides(dataset_config(dataset, model, scale), spec.fixed)
  changes = [("split", split)] if split else []
  if scale == "smoke":
    changes += [("num_epochs", SMOKE_EPOCHS), ("eval_every", 1), ("progress", False)]
  if name == "false_negatives":
    if scale == "smoke":  # each stage recompiles the epoch: reveal twice in 4 epochs
      start, every = 2, 1
    else:
      start = reveal_start if reveal_start is not None else FIRST_REVEAL.get(
          (dataset, model), -1)
      every = REVEAL_EVERY
    changes += [("reveal_start", start), ("reveal_every", every)]
    if scale == "paper" and start >= 0:  # room for all stages and their effect
      changes.append(("num_epochs", max(config.num_epochs,
                                        start + REVEAL_STAGES * every + 50)))
  config = experiments.with_overrides(experiments.with_overrides(config, changes),
                                      overrides)
  if spec.curves and "patience" not in dict(overrides):  # no early stop
    config = experiments.with_overrides(
        config, [("patience", config.num_epochs // config.eval_every + 1)])
  return config


def experiment_axes(name: str, model: str, scale: str) -> list[experiments.Axis]:
  """The grid of an experiment for `model` at `scale` (see the module docstring)."""
  axes = []
  for field, values in EXPERIMENTS[name].axes:
    values = list(values)
    if field == "sampler" and model != "lightgcn" and "mixgcf" in values:
      if name == "robustness":
        raise experiments.GridError("--experiment=robustness compares samplers under "
                                    "LightGCN (MixGCF needs its layers): use "
                                    "--model=lightgcn")
      values.remove("mixgcf")
    # Numeric axes that are not vmapped cost one compile per value: keep the ends.
    if (scale == "smoke" and field not in experiments.REPLICA_FIELDS and
        not isinstance(values[0], str)):
      values = [values[0], values[-1]]
    axes.append((field, values))
  return axes


def run_experiment(name: str, datasets: Sequence[str], model: str,
                   out: str | pathlib.Path, scale: str = "paper",
                   seeds: int | None = None, split: str | None = None,
                   reveal_start: int | None = None, vmap: str = "auto",
                   overrides: Sequence[tuple[str, str]] = ()) -> dict:
  """Runs (or reuses) an experiment's grid and writes its table and figure.

  Args:
    name: a key of EXPERIMENTS.
    datasets: dataset names (several only for `comparison`).
    model: mf | lightgcn.
    out: output folder.
    scale: smoke | paper.
    seeds: seeds per setting (default 1 at smoke scale, 5 at paper scale).
    split: override the dataset's split ("paper" | "fn").
    reveal_start: first reveal epoch for `false_negatives` at paper scale
      (default: the paper's, else automatic after the validation peak).
    vmap: auto | yes | no, as in launch/sweep.py.
    overrides: (field, value) pairs applied to the config last.

  Returns:
    {"table": path of table.md, "figure": path of the PNG, "rows": runs.csv rows}.
  """
  if name not in EXPERIMENTS:
    raise experiments.GridError(f"--experiment: one of {sorted(EXPERIMENTS)}")
  if scale not in SCALES:
    raise experiments.GridError(f"--scale: one of {SCALES}")
  if len(datasets) != 1 and EXPERIMENTS[name].columns != "dataset":
    raise experiments.GridError(f"--experiment={name} takes one --dataset")
  seeds = seeds or (1 if scale == "smoke" else PAPER_SEEDS)
  out = pathlib.Path(out)
  axes = experiment_axes(name, model, scale)
  rows, curves, marks = [], [], []
  for dataset in datasets:
    config = experiment_config(name, dataset, model, scale, split, reveal_start,
                               overrides)
    runs = experiments.plan_runs(config, axes, seeds=seeds, vmap=vmap)
    runs_dir = out / "runs" / (dataset if len(datasets) > 1 else "")
    dataset_rows = experiments.run_grid(config, runs, runs_dir)
    rows += [{"dataset": dataset, **row} for row in dataset_rows]
    for run in runs:
      for curve, setting in zip(plot.read_curves(runs_dir / run.name), run.settings):
        curve.hparams = {"dataset": dataset, **setting}
        curves.append(curve)
    if name == "false_negatives":
      marks = [config.reveal_start + k * config.reveal_every
               for k in range(REVEAL_STAGES)] if config.reveal_start >= 0 else []
  experiments.write_csv(rows, out / "runs.csv")
  title = (f"{EXPERIMENTS[name].title}: {MODEL_NAMES[model]}, "
           + ", ".join(DATASET_NAMES.get(d, d) for d in datasets))
  table = out / "table.md"
  table.write_text(f"# {title}\n\n{_table(name, rows, curves, seeds, scale)}")
  figure = _figure(name, curves, out / f"{name}.png", title, marks)
  print(f"wrote {table}, {figure} and {out / 'runs.csv'}")
  return {"table": table, "figure": figure, "rows": rows}


def _table(name: str, rows: list[dict], curves: list, seeds: int, scale: str) -> str:
  spec = EXPERIMENTS[name]
  note = (f"Mean ± std over {seeds} seed(s), scale `{scale}`; test metrics at each "
          "run's best validation epoch (valid/recall@50)")
  fields = [f for f, _ in spec.axes]
  if spec.columns is None:
    settings = experiments.aggregate(rows, fields)
    by_label = {c.label: c for c in _mean_curves(curves, fields)}
    recall = lambda s: by_label[_label(s.values)].values["test/recall@50"]
    extra = [("peak test R@50 (epoch)", lambda s: "{:.4f} ({})".format(
        *_peak(by_label[_label(s.values)]))),
             ("last test R@50", lambda s: f"{recall(s)[-1]:.4f}")]
    if all("fn_hit_rate" in c.values for c in curves):
      extra.append(("last FN hit rate", lambda s: "{:.4f}".format(
          by_label[_label(s.values)].values["fn_hit_rate"][-1])))
    key = experiments.select_key(rows)
    return (note + "; the best setting by that metric is bold. Peak and last are "
            "read from the seed-averaged curve.\n\n" +
            experiments.settings_table(settings, key, label=_label, extra=extra))
  return note + ".\n\n" + _pivot(rows, spec.rows, spec.columns,
                                improvement=name == "comparison")


def _peak(curve) -> tuple[float, int]:
  values = curve.values["test/recall@50"]
  best = int(np.nanargmax(values))
  return float(values[best]), int(curve.epochs[best])


def _pivot(rows: list[dict], row_field: str, column_field: str,
           improvement: bool) -> str:
  """Rows x (column groups x Recall/NDCG@50), like the paper's Tables 2 and 3.

  With `improvement`, a last row gives PDNS's relative gain over the best
  other sampler of each column.
  """
  metrics = ("test/recall@50", "test/ndcg@50")
  settings = {(s.values[row_field], s.values[column_field]): s
              for s in experiments.aggregate(rows, [row_field, column_field])}
  row_values = list(dict.fromkeys(r for r, _ in settings))
  column_values = list(dict.fromkeys(c for _, c in settings))
  header = [SYMBOLS.get(row_field, row_field)] + [
      f"{describe(column_field, c)} {plot.metric_label(m).split()[0]}"
      for c in column_values for m in metrics]
  body = [[value_text(row_field, r)] + [
      experiments.mean_std(settings[r, c], m) if (r, c) in settings else "-"
      for c in column_values for m in metrics] for r in row_values]
  if improvement and "pdns" in row_values and len(row_values) > 1:
    gains = []
    for c in column_values:
      for m in metrics:
        baseline = max(settings[r, c].mean[m] for r in row_values
                       if r != "pdns" and (r, c) in settings)
        gains.append(f"{100 * (settings['pdns', c].mean[m] / baseline - 1):+.2f}%")
    body.append(["Improv. (PDNS vs best baseline)"] + gains)
  return experiments.markdown_table(header, body)


def _mean_curves(curves: list, fields: Sequence[str]) -> list:
  for curve in curves:
    curve.label = _label({f: curve.hparams[f] for f in fields})
  return plot.mean_curves(curves)


def _figure(name: str, curves: list, path: pathlib.Path, title: str,
            marks: Sequence[int]) -> pathlib.Path:
  """Test Recall@50 per epoch, one line per setting (mean over seeds).

  One panel per value of the experiment's column field, else one panel plus
  a false-negative hit-rate panel when the data has an FN set.
  """
  spec = EXPERIMENTS[name]
  fields = [f for f, _ in spec.axes if f != spec.columns]
  if spec.columns is None:
    mean = _mean_curves(curves, fields)
    panels = [plot.Panel("Test Recall@50", mean, "test/recall@50", marks)]
    if all("fn_hit_rate" in c.values for c in mean):
      panels.append(plot.Panel("False negatives among chosen negatives", mean,
                               "fn_hit_rate", marks))
  else:
    panels = []
    for column in dict.fromkeys(c.hparams[spec.columns] for c in curves):
      mine = [c for c in curves if c.hparams[spec.columns] == column]
      panels.append(plot.Panel(describe(spec.columns, column),
                               _mean_curves(mine, fields), "test/recall@50"))
  return plot.draw(panels, path, title=title)


def main():
  """The command line (flags are defined here so that importing defines none)."""
  experiment = flags.DEFINE_enum("experiment", None, list(EXPERIMENTS), "Which experiment.")
  dataset = flags.DEFINE_string("dataset", "ml100k",
                                "Dataset (a comma list for --experiment=comparison).")
  model = flags.DEFINE_enum("model", "lightgcn", list(MODEL_NAMES), "Model.")
  out = flags.DEFINE_string("out", None, "Output folder.")
  scale = flags.DEFINE_enum("scale", "paper", SCALES,
                            "smoke: seconds, for CI; paper: the paper's protocol.")
  seeds = flags.DEFINE_integer("seeds", None,
                               "Seeds per setting (default: 1 smoke, 5 paper).")
  split = flags.DEFINE_enum("split", None, ["paper", "fn"],
                            "Override the dataset's split (fn: 4:1:1 with an FN set).")
  reveal_start = flags.DEFINE_integer(
      "reveal_start", None, "false_negatives: first reveal epoch (default: the paper's).")
  vmap = flags.DEFINE_enum("vmap", "auto", experiments.VMAP_MODES,
                           "Train seeds and replica fields as one vmapped run.")
  flags.mark_flags_as_required(["experiment", "out"])
  experiments.run_cli(lambda overrides: run_experiment(
      experiment.value, dataset.value.split(","), model.value, out.value, scale.value,
      seeds.value, split.value, reveal_start.value, vmap.value, overrides))


if __name__ == "__main__":
  main()
