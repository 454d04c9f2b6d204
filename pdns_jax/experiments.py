"""Grids of runs: expand, run (resumably, vmapped where possible), collect, aggregate.

Shared by `launch/sweep.py` (any grid over config fields) and `launch/paper.py`
(the paper's experiments). A grid is a list of (field, values) axes crossed
with seeds. Each point becomes a run in `<runs_dir>/<run name>/`, trained by
`train.train_and_evaluate`. Where the varied fields are ones a replica may vary
(seed, beta, alpha, l2, learning_rate), the points that differ only in them
train together as one vmapped replica run (config.num_replicas and
config.replica_sweep), which costs about as much as one run.

Resuming: a run whose summary.json exists is read back, not trained again; an
unfinished one resumes from its checkpoint inside train_and_evaluate. A run
folder whose config.json differs from the config about to run is refused, so
results of different settings never mix under one name.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import itertools
import json
import math
import pathlib
import sys
from typing import Any, Callable, Iterable, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from pdns_jax import data as data_lib
from pdns_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
REPLICA_FIELDS = train.REPLICA_FIELDS
# Fields that change only what a run prints or how often it saves, not its result.
OUTPUT_FIELDS = ("progress", "tensorboard", "checkpoint_every")
VMAP_MODES = ("auto", "yes", "no")
TEST_METRICS = ("test/recall@20", "test/ndcg@20", "test/recall@50", "test/ndcg@50")

Axis = tuple[str, list]  # (config field, values), e.g. ("beta", [0.05, 0.1])


class GridError(ValueError):
  """A grid, override or config path a user wrote is malformed."""


# ----------------------------------------------------------------------------
# Configs and overrides.


def load_config(spec: str):
  """Loads `path/to/config.py[:arg]` the way `--config=` does for the CLI.

  Args:
    spec: a config file, relative to the working directory or the repo root,
      optionally followed by `:arg` (passed to its get_config).

  Returns:
    The (locked) ConfigDict.
  """
  path_text, _, arg = spec.partition(":")
  path = pathlib.Path(path_text)
  if not path.is_file() and (ROOT / path).is_file():
    path = ROOT / path
  if not path.is_file():
    raise GridError(f"config file {path_text!r} not found (give a path such as "
                    "configs/ml100k.py, relative to here or to the repo root)")
  # Config files import `configs.default`, so the repo root must be importable.
  if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
  module_spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def coerce(value, current, field: str):
  """Converts `value` (often a string from the command line) to the type of `current`."""
  if not isinstance(value, str) or isinstance(current, str):
    return float(value) if isinstance(current, float) and isinstance(value, int) else value
  try:
    if isinstance(current, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(value)
      return value.lower() in ("true", "1")
    if isinstance(current, int):
      return int(value)
    if isinstance(current, float):
      return float(value)
    if isinstance(current, tuple):
      kind = type(current[0]) if current else str
      return tuple(kind(v) for v in value.split(","))
  except ValueError:
    raise GridError(f"config.{field}: {value!r} is not a valid "
                    f"{type(current).__name__}") from None
  raise GridError(f"config.{field}: cannot set a {type(current).__name__} field "
                  "from the command line")


def get_field(config, field: str):
  """Reads a dotted field (`synthetic.num_users`); raises GridError if unknown."""
  node = config
  for part in field.split("."):
    if not hasattr(node, "keys") or part not in node:
      raise GridError(f"config.{field}: no such config field")
    node = node[part]
  return node


def with_overrides(config, overrides: Iterable[tuple[str, Any]]):
  """A copy of `config` with each (dotted field, value) set, values coerced."""
  config = config.copy_and_resolve_references()
  for field, value in overrides:
    current = get_field(config, field)
    parent, _, leaf = field.rpartition(".")
    node = get_field(config, parent) if parent else config
    node[leaf] = coerce(value, current, field)
  return config


def split_config_flags(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates `--config.field=value` overrides from the other arguments.

  Returns:
    (the remaining argv, the overrides as (field, value-string) in order).
  """
  rest, overrides = [], []
  for arg in argv:
    if arg.startswith("--config."):
      field, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        raise GridError(f"{arg}: write overrides as --config.field=value")
      overrides.append((field, value))
    else:
      rest.append(arg)
  return rest, overrides


# ----------------------------------------------------------------------------
# Grids and the runs they become.


def parse_grid(text: str) -> list[tuple[str, list[str]]]:
  """Parses `"beta=0.05,0.1;pool_size=16,32"` into [(field, [value strings])]."""
  axes = []
  for part in filter(None, (p.strip() for p in text.split(";"))):
    field, eq, values = part.partition("=")
    field = field.strip()
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not eq or not field or not items:
      raise GridError(f"--grid: {part!r} is not 'field=v1,v2,...'")
    if field == "seed":
      raise GridError("--grid: vary seeds with --seeds (seeds config.seed, "
                      "config.seed+1, ...), not in the grid")
    if field in ("num_replicas", "replica_sweep"):
      raise GridError(f"--grid: {field} is set by the sweep itself; use --seeds and "
                      "grid axes instead")
    if field in (a for a, _ in axes):
      raise GridError(f"--grid: field {field!r} appears twice")
    axes.append((field, items))
  return axes


def typed_axes(config, axes: Sequence[tuple[str, Sequence]]) -> list[Axis]:
  """Coerces each axis' values to its field's type in `config`."""
  return [(field, [coerce(v, get_field(config, field), field) for v in values])
          for field, values in axes]


@dataclasses.dataclass(frozen=True)
class Run:
  """One call of train_and_evaluate: its folder name, its config and its replicas.

  Attributes:
    name: folder name under the runs directory.
    overrides: (field, value) pairs applied to the base config.
    settings: per replica, in the trainer's replica order: the grid's fields and
      the seed.
  """

  name: str
  overrides: tuple
  settings: tuple


def format_value(value) -> str:
  """A value as run names and tables write it (floats in %g: 0.05, 1e-04)."""
  return f"{value:g}" if isinstance(value, float) else str(value)


def _name(parts: Iterable[tuple[str, str]]) -> str:
  return ",".join(f"{field}={text}" for field, text in parts)


def plan_runs(config, axes: Sequence[Axis], seeds: int = 1,
              vmap: str = "auto") -> list[Run]:
  """Expands axes x seeds into runs, grouping replica-only variation into one run.

  Args:
    config: the base config (its seed is the first seed).
    axes: typed grid axes, see `typed_axes`.
    seeds: how many seeds per grid point (config.seed, config.seed + 1, ...).
    vmap: "auto" groups the points of each combination of the other fields into
      one replica run where the trainer allows it; "yes" insists (raises where it
      cannot); "no" trains every point and seed on its own.

  Returns:
    The runs, in grid order.
  """
  if vmap not in VMAP_MODES:
    raise GridError(f"--vmap: must be one of {VMAP_MODES} (got {vmap!r})")
  if seeds < 1:
    raise GridError(f"--seeds: must be >= 1 (got {seeds})")
  if config.num_replicas != 1 or config.replica_sweep:
    raise GridError("config.num_replicas/replica_sweep: leave them at 1/'' and use "
                    "--seeds and --grid; the sweep sets them")
  replica_axes = [a for a in axes if a[0] in REPLICA_FIELDS]
  other_axes = [a for a in axes if a[0] not in REPLICA_FIELDS]
  order = [field for field, _ in axes] + ["seed"]
  runs = []
  for combo in itertools.product(*(values for _, values in other_axes)):
    fixed = list(zip((field for field, _ in other_axes), combo))
    group_config = with_overrides(config, fixed)
    replicas = seeds * math.prod(len(values) for _, values in replica_axes)
    # The automatic reveal start follows one run's validation peak, so runs
    # that reveal false negatives that way cannot share a program.
    auto_reveal = group_config.reveal_fraction > 0 and group_config.reveal_start < 0
    group = vmap != "no" and replicas > 1 and not auto_reveal
    if vmap == "yes" and replicas > 1 and auto_reveal:
      raise GridError("--vmap=yes: runs with reveal_fraction > 0 need an explicit "
                      "config.reveal_start to train as replicas")
    if group:
      runs.append(_replica_run(group_config, fixed, replica_axes, seeds))
    else:
      for point in itertools.product(*(values for _, values in replica_axes)):
        varied = fixed + list(zip((field for field, _ in replica_axes), point))
        for r in range(seeds):
          seed = int(config.seed) + r
          overrides = tuple(varied) + (("seed", seed),)
          runs.append(Run(name=_name([(f, format_value(v)) for f, v in overrides]),
                          overrides=overrides,
                          settings=(dict(varied, seed=seed),)))
  # Rows list the varied fields in the grid's order, whatever the grouping.
  return [dataclasses.replace(run, settings=tuple({f: s[f] for f in order}
                                                  for s in run.settings))
          for run in runs]


def _replica_run(config, fixed: list, replica_axes: Sequence[Axis], seeds: int) -> Run:
  sweep = ";".join(f"{field}={','.join(repr(float(v)) for v in values)}"
                   for field, values in replica_axes)
  overrides = tuple(fixed) + (("num_replicas", seeds), ("replica_sweep", sweep))
  first = int(config.seed)
  seed_text = f"seed={first}" if seeds == 1 else f"seeds={first}-{first + seeds - 1}"
  name = _name([(f, format_value(v)) for f, v in fixed] +
               [(f, "+".join(format_value(v) for v in values))
                for f, values in replica_axes]) + ("," if fixed or replica_axes else "")
  settings = tuple(dict(fixed, **{f: s[f] for f, _ in replica_axes}, seed=s["seed"])
                   for s in train.replica_settings(with_overrides(config, overrides)))
  return Run(name=name + seed_text, overrides=overrides, settings=settings)


# ----------------------------------------------------------------------------
# Running and collecting.


def _comparable(config_json: dict) -> dict:
  return {k: v for k, v in config_json.items() if k not in OUTPUT_FIELDS}


def run_one(config, run: Run, runs_dir: str | pathlib.Path,
            log: Callable[[str], None] = print) -> list[dict]:
  """Trains `run` into `<runs_dir>/<run.name>` unless it has finished already.

  Returns:
    One row per replica: run, the varied fields, seed, best_epoch, the valid and
    test metrics at the best epoch, epochs_run and seconds (the run's training
    time, shared by its replicas).
  """
  workdir = pathlib.Path(runs_dir) / run.name
  run_config = with_overrides(config, run.overrides)
  saved_config = workdir / "config.json"
  if saved_config.is_file():
    wanted = _comparable(json.loads(run_config.to_json()))
    if _comparable(json.loads(saved_config.read_text())) != wanted:
      raise GridError(f"{workdir} holds a run with another config; choose another "
                      "--out, or delete that folder to train it again")
  summary_path = workdir / "summary.json"
  if summary_path.is_file():
    summary = json.loads(summary_path.read_text())
    log(f"{run.name}: finished before, reusing {summary_path}")
  else:
    log(f"{run.name}: training ({len(run.settings)} replica(s)) in {workdir}")
    summary = train.train_and_evaluate(run_config, workdir)
  return rows_of(run, summary)


def rows_of(run: Run, summary: dict) -> list[dict]:
  """The runs.csv rows of one finished run (see `run_one`)."""
  replicas = summary.get("replicas", [summary])
  if len(replicas) != len(run.settings):
    raise GridError(f"{run.name}: summary has {len(replicas)} replicas, the plan "
                    f"{len(run.settings)}; delete the folder and run again")
  rows = []
  for setting, result in zip(run.settings, replicas):
    for field, value in result.get("hparams", {}).items():
      # The trainer orders replicas itself; a mismatch would mislabel results.
      if field in setting and not math.isclose(float(setting[field]), float(value)):
        raise RuntimeError(f"{run.name}: replica {setting} has {field}={value}")
    metrics = {k: v for k, v in result.items() if k.startswith(("valid/", "test/"))}
    rows.append({"run": run.name, **setting, "best_epoch": result["best_epoch"],
                 **metrics, "epochs_run": summary["epochs_run"],
                 "seconds": round(summary["train_seconds"], 2)})
  return rows


def run_grid(config, runs: Sequence[Run], runs_dir: str | pathlib.Path,
             log: Callable[[str], None] = print) -> list[dict]:
  """Runs (or reuses) every run in order; returns all their rows."""
  rows = []
  for index, run in enumerate(runs):
    rows += run_one(config, run, runs_dir,
                    log=lambda text, i=index: log(f"[{i + 1}/{len(runs)}] {text}"))
  return rows


def write_csv(rows: Sequence[dict], path: str | pathlib.Path) -> None:
  """Writes rows (dicts) to CSV; columns in the order they first appear."""
  columns = list(dict.fromkeys(k for row in rows for k in row))
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


def read_csv(path: str | pathlib.Path) -> list[dict]:
  """Reads runs.csv back; numbers become floats."""
  def value(text):
    try:
      return float(text)
    except ValueError:
      return text
  with open(path, newline="") as f:
    return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------
# Aggregation over seeds and model selection.


def select_key(rows: Sequence[dict]) -> str:
  """The validation metric runs are selected by (valid/recall@<largest K>)."""
  keys = [k for k in rows[0] if k.startswith("valid/recall@")]
  if not keys:
    raise GridError("rows have no valid/recall@K column to select by")
  return max(keys, key=lambda k: int(k.rsplit("@", 1)[1]))


@dataclasses.dataclass
class Setting:
  """One grid point's results over seeds: mean and standard deviation per metric."""

  values: dict  # the varied fields
  seeds: int
  mean: dict
  std: dict


def aggregate(rows: Sequence[dict], fields: Sequence[str]) -> list[Setting]:
  """Groups rows by `fields` (in first-seen order); mean and std over seeds.

  The standard deviation is the sample one (ddof=1); 0 with one seed.
  """
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    groups.setdefault(tuple(row[f] for f in fields), []).append(row)
  metrics = [k for k in rows[0] if k.startswith(("valid/", "test/"))] + [
      "best_epoch", "seconds"]
  out = []
  for key, members in groups.items():
    table = {m: np.array([float(r[m]) for r in members]) for m in metrics}
    out.append(Setting(
        values=dict(zip(fields, key)), seeds=len(members),
        mean={m: float(v.mean()) for m, v in table.items()},
        std={m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in table.items()}))
  return out


def best_setting(settings: Sequence[Setting], key: str) -> int:
  """Index of the setting with the best mean `key` (a validation metric, never test)."""
  if not key.startswith("valid/"):
    raise ValueError(f"model selection must use a validation metric, not {key!r}")
  return int(np.argmax([s.mean[key] for s in settings]))


def mean_std(setting: Setting, metric: str, digits: int = 4) -> str:
  """`mean ± std` of a metric (just the mean for one seed)."""
  text = f"{setting.mean[metric]:.{digits}f}"
  return text + (f" ± {setting.std[metric]:.{digits}f}" if setting.seeds > 1 else "")


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
  """A GitHub markdown table."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
  return "\n".join(lines) + "\n"


def settings_table(settings: Sequence[Setting], key: str,
                   label: Callable[[dict], str] | None = None,
                   extra: Sequence[tuple[str, Callable[[Setting], str]]] = ()) -> str:
  """Markdown: one row per setting, mean ± std over seeds; the best by `key` in bold.

  Args:
    settings: aggregated results.
    key: the validation metric that picks the best setting.
    label: how a setting's values are written (default `field=value, ...`).
    extra: more (column title, cell function) pairs, e.g. peak/final Recall.
  """
  label = label or (lambda values: ", ".join(f"{f}={format_value(v)}"
                                            for f, v in values.items()) or "(base)")
  best = best_setting(settings, key)
  metrics = [key] + [m for m in TEST_METRICS if m in settings[0].mean]
  header = ["setting", "seeds", "best epoch", *metrics, "seconds", *(t for t, _ in extra)]
  body = []
  for index, s in enumerate(settings):
    mark = lambda text: f"**{text}**" if index == best else text
    body.append([mark(label(s.values)) + (" (best)" if index == best else ""),
                 s.seeds, f"{s.mean['best_epoch']:.0f}",
                 *(mark(mean_std(s, m)) for m in metrics),
                 f"{s.mean['seconds']:.0f}", *(cell(s) for _, cell in extra)])
  return markdown_table(header, body)


def aggregate_markdown(rows: Sequence[dict], fields: Sequence[str], title: str) -> str:
  """The aggregate.md of a sweep: table over settings and the selected one."""
  key = select_key(rows)
  settings = aggregate(rows, fields)
  best = settings[best_setting(settings, key)]
  chosen = ", ".join(f"{f}={format_value(v)}" for f, v in best.values.items()) or "(base)"
  return (f"# {title}\n\n"
          f"Mean ± standard deviation over seeds; test metrics are taken at each run's "
          f"best validation epoch. The best setting (bold) is chosen by mean {key}, "
          f"never by a test metric.\n\n"
          + settings_table(settings, key) +
          f"\nBest setting by {key}: {chosen} "
          f"(test/recall@50 {mean_std(best, 'test/recall@50')}).\n")


# ----------------------------------------------------------------------------
# The command line of the launch scripts.


def _parse_flags(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
  rest, overrides = split_config_flags(argv)
  return flags.FLAGS(rest), overrides


def run_cli(body: Callable[[list[tuple[str, str]]], None]) -> None:
  """`app.run` for the launch scripts: `--config.x=y` overrides, quiet logs, clean errors.

  Args:
    body: called with the overrides once the absl flags are parsed.
  """
  def main(args):
    argv, overrides = args
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # the scripts print per-run progress
    try:
      body(overrides)
    except (GridError, train.ConfigError, data_lib.DataError,
            train.NonFiniteLossError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  app.run(main, flags_parser=_parse_flags)
