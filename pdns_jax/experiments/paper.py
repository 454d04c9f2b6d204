"""The paper's experiments (PAPER.md section 8): configs, grids, tables and figures.

Library code of `launch/paper.py` (see its docstring for the command line and
what each experiment varies). An experiment builds one base config per
dataset from `configs/<dataset>.py`, plans its grid (`grid.plan_runs`), trains
or reuses the runs (`runner.run_grid`) and writes `table.md`, a figure and
`runs.csv`. Curves and table rows are matched by their settings' values,
never by display text.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
from typing import Any, Sequence

import numpy as np

from pdns_jax import config as config_lib
from pdns_jax import plot
from pdns_jax import samplers
from pdns_jax.config import ConfigError
from pdns_jax.experiments import grid as grid_lib
from pdns_jax.experiments.comparison import chosen_settings, pivot_table
from pdns_jax.experiments.labels import (DATASET_NAMES, MODEL_NAMES, setting_text,
                                         settings_text)
from pdns_jax.experiments import runner
from pdns_jax.experiments import tables

SCALES = ("smoke", "paper")
SMOKE_EPOCHS = 4
PAPER_SEEDS = 5
# The paper's first reveal epoch per (dataset, model) (PAPER.md 8.3).
FIRST_REVEAL = {("ml100k", "mf"): 150, ("douban", "mf"): 220,
                ("ml100k", "lightgcn"): 100, ("douban", "lightgcn"): 100}
REVEAL_EVERY = 50
REVEAL_STAGES = 5  # 20% subsets
# Table 2's samplers in the paper's order (MixGCF needs LightGCN's layers).
COMPARISON_SAMPLERS = ("rns", "advir", "irgan", "dns", "srns", "gdns", "mixgcf",
                       "adasir_u", "adasir_p", "pdns")
# The GAN samplers start from RNS training (PAPER.md 8.4): epochs of it.
PRETRAIN_EPOCHS = {"smoke": 1, "paper": 20}


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
        axes=(("sampler", COMPARISON_SAMPLERS),),
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


# ----------------------------------------------------------------------------
# Configs and grids.


def base_config(dataset: str, model: str, scale: str):
  """configs/<dataset>.py for `model` at `scale` (its `mf` and `smoke` variants)."""
  if dataset == "synthetic":  # one variant only; the model is set as a field
    arg = "smoke" if scale == "smoke" else ""
  else:
    arg = ",".join(v for v, on in (("mf", model == "mf"), ("smoke", scale == "smoke"))
                   if on)
  try:
    module = importlib.import_module(f"configs.{dataset}")
  except ModuleNotFoundError:
    raise ConfigError(f"--dataset: no config configs/{dataset}.py") from None
  return config_lib.with_overrides(module.get_config(arg), [("model", model)])


def experiment_config(name: str, dataset: str, model: str, scale: str,
                      split: str | None = None, reveal_start: int | None = None,
                      overrides: Sequence[tuple[str, Any]] = ()):
  """The base config of one experiment on one dataset, before the grid.

  Args:
    name, dataset, model, scale, split, reveal_start: see `run_experiment`.
    overrides: (dotted field, value) pairs set last, e.g. the `--config.x=y`
      values of the command line (typed, or text parsed to the field's type).
  """
  spec = EXPERIMENTS[name]
  config = config_lib.with_overrides(base_config(dataset, model, scale), spec.fixed)
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
  config = config_lib.with_overrides(config_lib.with_overrides(config, changes),
                                     overrides)
  if spec.curves and "patience" not in dict(overrides):  # no early stop
    # max(): an impossible eval_every is reported by the config check, later.
    evaluations = config.num_epochs // max(config.eval_every, 1)
    config = config_lib.with_overrides(config, [("patience", evaluations + 1)])
  return config


def experiment_axes(name: str, model: str, scale: str) -> list[grid_lib.Axis]:
  """The grid of an experiment for `model` at `scale` (see launch/paper.py)."""
  axes = []
  for field, values in EXPERIMENTS[name].axes:
    values = list(values)
    if field == "sampler" and model != "lightgcn" and "mixgcf" in values:
      if name == "robustness":
        raise ConfigError("--experiment=robustness compares samplers under "
                          "LightGCN (MixGCF needs its layers): use --model=lightgcn")
      values.remove("mixgcf")
    # Numeric axes that are not vmapped cost one compile per value: keep the ends.
    if (scale == "smoke" and field not in config_lib.REPLICA_FIELDS and
        not isinstance(values[0], str)):
      values = [values[0], values[-1]]
    axes.append((field, values))
  return axes


# ----------------------------------------------------------------------------
# Running an experiment.


def run_experiment(name: str, datasets: Sequence[str], model: str,
                   out: str | pathlib.Path, scale: str = "paper",
                   seeds: int | None = None, split: str | None = None,
                   reveal_start: int | None = None, vmap: str = "auto",
                   overrides: Sequence[tuple[str, Any]] = (), search: str = "") -> dict:
  """Runs (or reuses) an experiment's grid and writes its table and figure.

  Every run's config (of every dataset) is checked before the first trains.

  Args:
    name: a key of EXPERIMENTS.
    datasets: dataset names (several only for `comparison`).
    model: mf | lightgcn.
    out: output folder.
    scale: smoke | paper.
    seeds: seeds per setting (None: 1 at smoke scale, 5 at paper scale).
    split: override the dataset's split ("paper" | "fn").
    reveal_start: first reveal epoch for `false_negatives` at paper scale
      (default: the paper's, else automatic after the validation peak).
    vmap: auto | yes | no, as in launch/sweep.py.
    overrides: (field, value) pairs applied to the config last.
    search: `comparison` only: a hyper-parameter grid "field=v1,v2;..." that
      every sampler is searched over (a `beta` axis only for PDNS); each
      sampler's table cell is its setting with the best mean validation
      Recall@50.

  Returns:
    {"table": path of table.md, "figure": path of the PNG, "rows": runs.csv rows}.

  Raises:
    ConfigError: a bad experiment, scale, dataset list, --seeds, --out or value.
  """
  if name not in EXPERIMENTS:
    raise ConfigError(f"--experiment: one of {sorted(EXPERIMENTS)}")
  if scale not in SCALES:
    raise ConfigError(f"--scale: one of {SCALES}")
  if len(datasets) != 1 and EXPERIMENTS[name].columns != "dataset":
    raise ConfigError(f"--experiment={name} takes one --dataset")
  out = runner.output_folder(out)
  seeds = (1 if scale == "smoke" else PAPER_SEEDS) if seeds is None else seeds
  axes = experiment_axes(name, model, scale)
  if search and name != "comparison":
    raise ConfigError("--search: only --experiment=comparison searches hyper-parameters")
  plans = []  # (dataset, fixed fields of the rows, config, runs, runs folder)
  for dataset in datasets:
    config = experiment_config(name, dataset, model, scale, split, reveal_start,
                               overrides)
    runs_dir = out / "runs" / (dataset if len(datasets) > 1 else "")
    if name == "comparison":
      search_axes = grid_lib.parse_grid(search, config)
      plans += [_sampler_plan(dataset, config, sampler, search_axes, scale, seeds, vmap,
                              runs_dir) for _, values in axes for sampler in values]
    else:
      plans.append((dataset, {}, config, grid_lib.plan_runs(config, axes, seeds=seeds,
                                                            vmap=vmap), runs_dir))
  for _, _, config, runs, _ in plans:
    runner.check_runs(config, runs)
  rows, curves, marks = [], [], []
  for dataset, fixed, config, runs, runs_dir in plans:
    rows += [{"dataset": dataset, **fixed, **row}
             for row in runner.run_grid(config, runs, runs_dir)]
    for run in runs:
      for curve, setting in zip(plot.read_curves(runs_dir / run.name), run.settings):
        curves.append(dataclasses.replace(
            curve, hparams={"dataset": dataset, **fixed, **setting}))
    if name == "false_negatives" and config.reveal_start >= 0:
      marks = [config.reveal_start + k * config.reveal_every
               for k in range(REVEAL_STAGES)]
  tables.write_csv(rows, out / "runs.csv")
  title = (f"{EXPERIMENTS[name].title}: {MODEL_NAMES[model]}, "
           + ", ".join(DATASET_NAMES.get(d, d) for d in datasets))
  table = out / "table.md"
  table.write_text(f"# {title}\n\n{experiment_table(name, rows, curves, seeds, scale)}"
                   + (f"\nSearched: `{search}` (beta for PDNS only).\n" if search else ""))
  figure = experiment_figure(name, curves, out / f"{name}.png", title, marks)
  print(f"wrote {table}, {figure} and {out / 'runs.csv'}")
  return {"table": table, "figure": figure, "rows": rows}


def _sampler_plan(dataset, config, sampler, search_axes, scale, seeds, vmap, runs_dir):
  """One sampler's runs of the comparison: its config and the search grid."""
  changes = [("sampler", sampler)]
  if samplers.REGISTRY[sampler].pretrain and config.pretrain_epochs == 0:
    changes.append(("pretrain_epochs", PRETRAIN_EPOCHS[scale]))
  config = config_lib.with_overrides(config, changes)
  axes = [(f, v) for f, v in search_axes if f != "beta" or sampler == "pdns"]
  runs = grid_lib.plan_runs(config, axes, seeds=seeds, vmap=vmap)
  return dataset, {"sampler": sampler}, config, runs, runs_dir / f"sampler={sampler}"


# ----------------------------------------------------------------------------
# Tables and figures (from rows and curves; no training).


def _values(mapping: dict, fields: Sequence[str]) -> tuple:
  return tuple(mapping[f] for f in fields)


def mean_curves(curves: Sequence[plot.Curve], fields: Sequence[str]) -> list[plot.Curve]:
  """New curves averaging the seeds of each setting of `fields` (from their hparams)."""
  return plot.mean_curves(
      curves, key=lambda c: _values(c.hparams, fields),
      label=lambda c: settings_text({f: c.hparams[f] for f in fields}))


def experiment_table(name: str, rows: Sequence[dict], curves: Sequence[plot.Curve],
                     seeds: int, scale: str) -> str:
  """The markdown of table.md (below its title) for experiment `name`.

  Args:
    name: a key of EXPERIMENTS.
    rows: runs.csv rows (with the experiment's axes and "dataset").
    curves: per run and replica, hparams holding the same fields and values.
    seeds, scale: named in the note above the table.
  """
  spec = EXPERIMENTS[name]
  note = (f"Mean ± std over {seeds} seed(s), scale `{scale}`; test metrics at each "
          "run's best validation epoch (valid/recall@50)")
  if spec.columns is not None:
    text = note + ".\n\n" + pivot_table(rows, spec.rows, spec.columns,
                                        improvement=name == "comparison")
    if name == "comparison":
      text += "\n" + chosen_settings(rows, spec.rows, spec.columns)
    return text
  fields = [f for f, _ in spec.axes]
  settings = tables.aggregate(rows, fields)
  by_values = {_values(c.hparams, fields): c for c in mean_curves(curves, fields)}
  curve_of = lambda s: by_values[_values(s.values, fields)]
  extra = [("peak test R@50 (epoch)", lambda s: "{:.4f} ({})".format(*_peak(curve_of(s)))),
           ("last test R@50",
            lambda s: f"{curve_of(s).values['test/recall@50'][-1]:.4f}")]
  if all("fn_hit_rate" in c.values for c in curves):
    extra.append(("last FN hit rate",
                  lambda s: f"{curve_of(s).values['fn_hit_rate'][-1]:.4f}"))
  key = tables.select_key(rows)
  return (note + "; the best setting by that metric is bold. Peak and last are "
          "read from the seed-averaged curve.\n\n" +
          tables.settings_table(settings, key, label=settings_text, extra=extra))


def _peak(curve: plot.Curve) -> tuple[float, int]:
  values = curve.values["test/recall@50"]
  best = int(np.nanargmax(values))
  return float(values[best]), int(curve.epochs[best])


def experiment_figure(name: str, curves: Sequence[plot.Curve], path: pathlib.Path,
                      title: str, marks: Sequence[int]) -> pathlib.Path:
  """Test Recall@50 per epoch, one line per setting (mean over seeds).

  One panel per value of the experiment's column field, else one panel plus
  a false-negative hit-rate panel when the data has an FN set.
  """
  spec = EXPERIMENTS[name]
  fields = [f for f, _ in spec.axes if f != spec.columns]
  if spec.columns is None:
    mean = mean_curves(curves, fields)
    panels = [plot.Panel("Test Recall@50", mean, "test/recall@50", marks)]
    if all("fn_hit_rate" in c.values for c in mean):
      panels.append(plot.Panel("False negatives among chosen negatives", mean,
                               "fn_hit_rate", marks))
  else:
    panels = []
    for column in dict.fromkeys(c.hparams[spec.columns] for c in curves):
      mine = [c for c in curves if c.hparams[spec.columns] == column]
      panels.append(plot.Panel(setting_text(spec.columns, column),
                               mean_curves(mine, fields), "test/recall@50"))
  return plot.draw(panels, path, title=title)
