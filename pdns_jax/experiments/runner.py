"""Runs planned runs: checks them all first, then trains or reuses each one.

Each run trains into `<runs_dir>/<run name>/` through `train.train_and_evaluate`.
A run whose summary.json is complete is read back, not trained again; an
unfinished one (no summary, or one cut short) resumes from its checkpoint
inside train_and_evaluate. A run folder whose config.json differs from the
config about to run is refused, so results of different settings never mix
under one name.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Callable, Sequence

from pdns_jax import train
from pdns_jax.config import ConfigError
from pdns_jax.experiments.grid import PlannedRun

# Fields that change only what a run prints or how often it saves, not its result.
OUTPUT_FIELDS = ("progress", "tensorboard", "checkpoint_every")

Log = Callable[[str], None]


def output_folder(out: str | pathlib.Path | None) -> pathlib.Path:
  """The --out folder as a path, refused if missing or a file (before any compute)."""
  if not out:
    raise ConfigError("--out: give an output folder")
  out = pathlib.Path(out)
  if out.exists() and not out.is_dir():
    raise ConfigError(f"--out: {out} is a file; give a folder")
  return out


def check_runs(config, runs: Sequence[PlannedRun]) -> None:
  """Runs the trainer's config check on every planned run, before any of them trains.

  Raises:
    ConfigError: the first impossible value, naming the field and the run.
  """
  for run in runs:
    try:
      train.check_config(run.config(config))
    except ConfigError as e:
      raise ConfigError(f"{e} [in run {run.name}]") from None


def _comparable(config_json: dict) -> dict:
  return {k: v for k, v in config_json.items() if k not in OUTPUT_FIELDS}


def _finished_summary(path: pathlib.Path, log: Log) -> dict | None:
  """The summary at `path` if it is complete, else None (the run is unfinished)."""
  if not path.is_file():
    return None
  try:
    summary = json.loads(path.read_text())
    complete = (all("best_epoch" in r and "hparams" in r for r in summary["replicas"]) and
                "epochs_run" in summary and "train_seconds" in summary)
  except (ValueError, TypeError, KeyError):  # truncated, not JSON, another shape
    complete = False
  if not complete:
    log(f"{path} is incomplete or unreadable: training the run again "
        "(it resumes from its last checkpoint)")
    return None
  return summary


def run_planned(config, run: PlannedRun, runs_dir: str | pathlib.Path,
                log: Log = print) -> list[dict]:
  """Trains `run` into `<runs_dir>/<run.name>` unless it has finished already.

  Returns:
    One row per replica: run, the varied fields, seed, best_epoch, the valid and
    test metrics at the best epoch, epochs_run and seconds (the run's training
    time, shared by its replicas).

  Raises:
    ConfigError: the folder holds a run of another config.
  """
  workdir = pathlib.Path(runs_dir) / run.name
  run_config = run.config(config)
  saved_config = workdir / "config.json"
  if saved_config.is_file():
    wanted = _comparable(json.loads(run_config.to_json()))
    if _comparable(json.loads(saved_config.read_text())) != wanted:
      raise ConfigError(f"{workdir} holds a run with another config; choose another "
                        "--out, or delete that folder to train it again")
  summary = _finished_summary(workdir / "summary.json", log)
  if summary is not None:
    log(f"{run.name}: finished before, reusing {workdir / 'summary.json'}")
  else:
    log(f"{run.name}: training ({len(run.settings)} replica(s)) in {workdir}")
    summary = train.train_and_evaluate(run_config, workdir)
  return rows_of(run, summary)


def rows_of(run: PlannedRun, summary: dict) -> list[dict]:
  """The runs.csv rows of one finished run (see `run_planned`)."""
  replicas = summary["replicas"]
  if len(replicas) != len(run.settings):
    raise ConfigError(f"{run.name}: summary has {len(replicas)} replicas, the plan "
                      f"{len(run.settings)}; delete the folder and run again")
  rows = []
  for setting, result in zip(run.settings, replicas):
    for field, value in result["hparams"].items():
      # The trainer orders replicas itself; a mismatch would mislabel results.
      if field in setting and not math.isclose(float(setting[field]), float(value)):
        raise RuntimeError(f"{run.name}: replica {setting} has {field}={value}")
    metrics = {k: v for k, v in result.items() if k.startswith(("valid/", "test/"))}
    rows.append({"run": run.name, **setting, "best_epoch": result["best_epoch"],
                 **metrics, "epochs_run": summary["epochs_run"],
                 "seconds": round(summary["train_seconds"], 2)})
  return rows


def run_grid(config, runs: Sequence[PlannedRun], runs_dir: str | pathlib.Path,
             log: Log = print) -> list[dict]:
  """Checks every run's config, then runs (or reuses) them in order.

  Returns:
    All their rows, in order.
  """
  check_runs(config, runs)
  rows = []
  for index, run in enumerate(runs):
    rows += run_planned(config, run, runs_dir,
                        log=lambda text, i=index: log(f"[{i + 1}/{len(runs)}] {text}"))
  return rows
