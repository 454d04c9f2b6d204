"""Training curves from runs' metrics.jsonl: read, average over seeds, draw.

  python -m pdns_jax.plot WORKDIR... [--out curves.png] [--metric test/recall@50]

draws one line per run (and per replica of a replica run, labelled by the
hyper-parameters that differ between its replicas); `--metric` may be given
several times, one panel each (e.g. `--metric fn_hit_rate`). Figures are drawn
with matplotlib's Agg canvas, never pyplot, so this works without a display and
does not change a notebook's backend. The paper's experiments
(`pdns_jax/experiments/paper.py`) draw their figures here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from typing import Callable, Hashable, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
import ml_collections
import numpy as np

from pdns_jax import config as config_lib

METRIC_LABELS = {"fn_hit_rate": "False-negative hit rate", "loss": "Training loss",
                 "revealed": "Revealed share of the FN set"}


@dataclasses.dataclass
class Curve:
  """One line: a metric per evaluated epoch (NaN where a run has no value).

  Attributes:
    label: legend text.
    epochs: evaluated epochs, increasing.
    values: metric name -> array aligned with `epochs`.
    hparams: the replica's seed, beta, alpha, l2 and learning rate.
    spread: metric name -> standard deviation over the averaged curves, if any.
  """

  label: str
  epochs: np.ndarray
  values: dict
  hparams: dict = dataclasses.field(default_factory=dict)
  spread: dict = dataclasses.field(default_factory=dict)


def metric_label(metric: str) -> str:
  """`test/recall@50` -> `Recall@50 (test)`, as on the paper's axes."""
  if metric in METRIC_LABELS:
    return METRIC_LABELS[metric]
  split, _, name = metric.rpartition("/")
  name = name.replace("recall", "Recall").replace("ndcg", "NDCG")
  return f"{name} ({split})" if split else name


def read_curves(workdir: str | pathlib.Path) -> list[Curve]:
  """The curves of one run folder, one per replica in the trainer's order.

  Labels are the folder name, plus for several replicas the hyper-parameters
  that differ between them. Each replica's hyper-parameters come from the
  run's config.json, expanded as the trainer expands them, so a run still
  training can be drawn too.
  """
  workdir = pathlib.Path(workdir)
  path = workdir / "metrics.jsonl"
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: is {workdir} a training workdir?")
  lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  config_path = workdir / "config.json"
  settings = (config_lib.replica_settings(ml_collections.ConfigDict(
      json.loads(config_path.read_text()))) if config_path.is_file() else [{}])
  varying = [k for k in config_lib.REPLICA_FIELDS
             if len({s.get(k) for s in settings}) > 1]
  curves = []
  for replica, hparams in enumerate(settings):
    mine = [l for l in lines if l.get("replica", 0) == replica]
    names = dict.fromkeys(k for l in mine for k, v in l.items()
                          if isinstance(v, (int, float)) and k not in ("epoch", "replica"))
    label = workdir.name + "".join(f", {k}={hparams[k]:g}" for k in varying)
    curves.append(Curve(
        label=label, epochs=np.array([l["epoch"] for l in mine]),
        values={n: np.array([l.get(n, np.nan) for l in mine], float) for n in names},
        hparams=hparams))
  return curves


def mean_curve(group: Sequence[Curve], label: str, hparams: dict | None = None) -> Curve:
  """A new curve averaging `group` (e.g. the seeds of one setting), per epoch.

  Epochs are the union over the group; each point averages the curves that
  reached it (runs that stopped early drop out). The group is left unchanged.

  Args:
    group: the curves to average.
    label: the new curve's legend text.
    hparams: the new curve's hparams (e.g. the setting the group shares).
  """
  epochs = np.unique(np.concatenate([c.epochs for c in group]))
  names = list(dict.fromkeys(n for c in group for n in c.values))
  values, spread = {}, {}
  for name in names:
    table = np.full((len(group), len(epochs)), np.nan)
    for row, c in enumerate(group):
      if name in c.values:
        table[row, np.searchsorted(epochs, c.epochs)] = c.values[name]
    counts = np.sum(~np.isnan(table), axis=0)
    sums = np.nansum(table, axis=0)
    values[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    if len(group) > 1:
      centred = np.where(np.isnan(table), 0.0, table - values[name])
      spread[name] = np.sqrt(np.sum(centred ** 2, axis=0) / np.maximum(counts - 1, 1))
  return Curve(label=label, epochs=epochs, values=values, hparams=dict(hparams or {}),
               spread=spread)


def mean_curves(curves: Sequence[Curve],
                key: Callable[[Curve], Hashable] = lambda c: c.label,
                label: Callable[[Curve], str] = lambda c: c.label) -> list[Curve]:
  """Averages the curves that share `key` (default: the label); first-seen order.

  Args:
    curves: the curves; none is changed.
    key: what a group shares, e.g. the setting's values in `hparams`.
    label: the legend text of a group, from its first curve.

  Returns:
    One new curve per group (see `mean_curve`), with the first curve's hparams.
  """
  groups: dict[Hashable, list[Curve]] = {}
  for curve in curves:
    groups.setdefault(key(curve), []).append(curve)
  return [mean_curve(group, label(group[0]), group[0].hparams)
          for group in groups.values()]


@dataclasses.dataclass
class Panel:
  """One axes of a figure: a title, the curves and the metric they show."""

  title: str
  curves: Sequence[Curve]
  metric: str = "test/recall@50"
  marks: Sequence[float] = ()  # epochs marked by a dotted vertical line


def draw(panels: Sequence[Panel], out: str | pathlib.Path, title: str = "") -> pathlib.Path:
  """Draws panels side by side into a PNG (one legend per panel).

  Args:
    panels: what to draw.
    out: the PNG path (folders are created).
    title: the figure's title.

  Returns:
    The path written.
  """
  figure = Figure(figsize=(5.2 * len(panels), 4.0), layout="constrained")
  for axes, panel in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
    for curve in panel.curves:
      if panel.metric not in curve.values:
        continue
      y = curve.values[panel.metric]
      line, = axes.plot(curve.epochs, y, marker="." if len(y) < 30 else None,
                        label=curve.label)
      if panel.metric in curve.spread:
        s = curve.spread[panel.metric]
        axes.fill_between(curve.epochs, y - s, y + s, color=line.get_color(), alpha=0.15,
                          linewidth=0)
    last = max((c.epochs.max() for c in panel.curves if len(c.epochs)), default=0)
    for epoch in (m for m in panel.marks if m <= last):
      axes.axvline(epoch, color="grey", linestyle=":", linewidth=1)
    axes.set_title(panel.title)
    axes.set_xlabel("Epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric_label(panel.metric))
    axes.grid(alpha=0.3)
    if axes.lines:
      axes.legend(fontsize="small")
  if title:
    figure.suptitle(title)
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(out, dpi=120)
  return out


def plot_workdirs(workdirs: Sequence[str | pathlib.Path], out: str | pathlib.Path,
                  metrics: Sequence[str] = ("test/recall@50",),
                  relabel: Callable[[Curve], str] | None = None) -> pathlib.Path:
  """One panel per metric, one line per run/replica of `workdirs`."""
  curves = [c for w in workdirs for c in read_curves(w)]
  if relabel is not None:
    curves = [dataclasses.replace(c, label=relabel(c)) for c in curves]
  return draw([Panel(title=metric_label(m), curves=curves, metric=m) for m in metrics],
              out)


def main(argv: Sequence[str] | None = None) -> int:
  """The command line; returns the exit status."""
  parser = argparse.ArgumentParser(
      prog="python -m pdns_jax.plot", description="Draws training curves of runs.")
  parser.add_argument("workdirs", nargs="+", help="training workdirs (with metrics.jsonl)")
  parser.add_argument("--out", default="curves.png", help="PNG file to write")
  parser.add_argument("--metric", action="append", help=(
      "metric per panel, repeatable (default test/recall@50); e.g. valid/recall@50, "
      "test/ndcg@50, fn_hit_rate, loss"))
  args = parser.parse_args(argv)
  try:
    out = plot_workdirs(args.workdirs, args.out, args.metric or ["test/recall@50"])
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
