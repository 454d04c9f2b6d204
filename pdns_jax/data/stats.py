"""Dataset statistics beside the paper's Table 1.

  PDNS_DATA_DIR=../shared/data python -m pdns_jax.data.stats
  python -m pdns_jax.data.stats --data_dir ../shared/data --dataset gowalla,douban

For every dataset: users, items, interactions, density and, for the datasets
of the false-negative experiments (4:1:1 split), the FN-set size, each next to
the paper's value, then the source it was read from and why figures differ. A
dataset whose files are absent is listed with where it was looked for and how
to get it. Each dataset is configured by `configs/<name>.py` where that exists.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Optional

from pdns_jax.data.cache import load_split
from pdns_jax.data.core import DataError
from pdns_jax.data.reference import DIFFERENCES, PAPER_TABLE1, Counts, measure
from pdns_jax.data.registry import load_interactions
from pdns_jax.data.sources import resolve_data_dir

DATASETS = ("ml100k", "douban", "taobao", "tmall", "gowalla", "synthetic")
# The datasets whose FN set the paper reports (and the built-in one).
FN_DATASETS = ("ml100k", "douban", "synthetic")


def stats_config(name: str, data_dir: Optional[str] = None):
  """`configs/<name>.py`'s get_config() where it exists, else configs/default.py's.

  Args:
    name: dataset name.
    data_dir: overrides config.data_dir when given.
  """
  try:
    module = importlib.import_module(f"configs.{name}")
  except ModuleNotFoundError as e:
    if e.name != f"configs.{name}":
      raise
    module = importlib.import_module("configs.default")
  config = module.get_config()
  with config.unlocked():
    config.dataset = name
    if data_dir:
      config.data_dir = data_dir
  return config


def dataset_stats(name: str, data_dir: Optional[str] = None) -> tuple[Counts, str, float]:
  """Loads one dataset and counts it.

  Args:
    name: dataset name.
    data_dir: the data folder; None = config.data_dir, $PDNS_DATA_DIR or cache.

  Returns:
    (counts, source line, seconds the load took).

  Raises:
    DataError: where the files are absent or malformed.
  """
  config = stats_config(name, data_dir)
  start = time.perf_counter()
  interactions = load_interactions(config)
  seconds = time.perf_counter() - start
  fn = None
  if name in FN_DATASETS:
    with config.unlocked():
      config.split = "fn"
    fn = len(load_split(config).fn)
  return measure(interactions, fn), interactions.source, seconds


def _row(name: str, label: str, c: Optional[Counts]) -> str:
  if c is None:
    cells = ["-"] * 5
  else:
    cells = [f"{c.users:,}", f"{c.items:,}", f"{c.interactions:,}",
             f"{c.density:.5f}", "-" if c.fn is None else f"{c.fn:,}"]
  return f"{name:<10} {label:<6}" + "".join(f"{cell:>14}" for cell in cells)


def report(names, data_dir: Optional[str] = None) -> str:
  """The statistics table for `names`, with sources and differences below it."""
  folder = resolve_data_dir(data_dir)
  lines = [f"Datasets in {folder} beside the paper's Table 1", "",
           f"{'dataset':<10} {'':<6}" + "".join(
               f"{h:>14}" for h in ("users", "items", "interactions", "density",
                                    "FN set")),
           ]
  notes = []
  for name in names:
    try:
      ours, source, seconds = dataset_stats(name, data_dir)
    except DataError as e:
      lines.append(f"{name:<10} not found or unreadable: {e}")
      continue
    lines.append(_row(name, "ours", ours))
    lines.append(_row("", "paper", PAPER_TABLE1.get(name)))
    notes.append(f"{name}: {source} (loaded in {seconds:.1f} s)")
    if name in DIFFERENCES:
      notes.append(f"  note: {DIFFERENCES[name]}")
  return "\n".join(lines + ["", "Sources:"] + notes)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=None,
                      help="folder holding the dataset folders (default: "
                           "$PDNS_DATA_DIR, else ~/.cache/pdns_jax/data)")
  parser.add_argument("--dataset", default=",".join(DATASETS),
                      help=f"comma-separated subset of {','.join(DATASETS)}")
  args = parser.parse_args(argv)
  names = [n for n in args.dataset.split(",") if n]
  unknown = sorted(set(names) - set(DATASETS))
  if unknown:
    parser.error(f"unknown dataset(s) {unknown}; choose from {DATASETS}")
  print(report(names, args.data_dir))
  return 0


if __name__ == "__main__":
  sys.exit(main())
