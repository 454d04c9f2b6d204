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
import dataclasses
import importlib
import sys
import time
from typing import Optional

from pdns_jax import data as data_lib
from pdns_jax.data.core import DataError, Interactions


@dataclasses.dataclass(frozen=True)
class Counts:
  """One row of Table 1."""

  users: int
  items: int
  interactions: int
  density: float
  fn: Optional[int] = None  # FN-set size, only for the 4:1:1 split datasets


# PAPER.md section 4 (the paper's Table 1).
PAPER_TABLE1 = {
    "ml100k": Counts(943, 1682, 100_000, 0.06304, 17_057),
    "douban": Counts(2862, 3000, 134_498, 0.01566, 23_599),
    "taobao": Counts(22_976, 29_149, 439_305, 0.00066),
    "tmall": Counts(10_000, 14_965, 461_899, 0.00309),
    "gowalla": Counts(29_858, 40_981, 1_027_370, 0.00084),
}
DATASETS = ("ml100k", "douban", "taobao", "tmall", "gowalla", "synthetic")
# The datasets whose FN set the paper reports (and the built-in one).
FN_DATASETS = ("ml100k", "douban", "synthetic")

# Why our figures differ from the paper's, where they do.
DIFFERENCES = {
    "ml100k": ("counts and FN set are the paper's; its density 0.06304 is "
               "0.0630469 truncated"),
    "douban": ("the paper keeps 2,862 users by a filter it does not state; every "
               "user with a rating is kept here (douban/SOURCE.md lists the filters "
               "tried; none gives 2,862), hence also the larger FN set"),
    "taobao": ("with the raw Tianchi log, the paper's random user subset is not "
               "public, so a seeded one of the same size differs in items and "
               "interactions; with the MULE substitute, it is other data without "
               "clicks, and fewer users qualify than the paper samples"),
    "tmall": ("with the raw Tianchi log, the paper's random user subset is not "
              "public, so a seeded one of the same size differs in items and "
              "interactions; with the MULE substitute, it is other data without "
              "clicks, hence fewer interactions per user"),
    "synthetic": "the built-in planted dataset, not one of the paper's",
}


def dataset_config(name: str, data_dir: Optional[str] = None):
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


def measure(interactions: Interactions, fn: Optional[int] = None) -> Counts:
  """Counts one dataset as Table 1 does."""
  cells = interactions.num_users * interactions.num_items
  return Counts(interactions.num_users, interactions.num_items,
                interactions.num_interactions, interactions.num_interactions / cells,
                fn)


def describe(interactions: Interactions) -> str:
  """Two lines for a run's log: the source, and the counts beside the paper's."""
  ours = measure(interactions)
  line = (f"{interactions.name}: {ours.users:,} users / {ours.items:,} items / "
          f"{ours.interactions:,} interactions (density {ours.density:.5f})")
  paper = PAPER_TABLE1.get(interactions.name)
  if paper is not None:
    line += (f"; paper's Table 1: {paper.users:,} / {paper.items:,} / "
             f"{paper.interactions:,} ({paper.density:.5f})")
  return f"source: {interactions.source}\n{line}"


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
  config = dataset_config(name, data_dir)
  start = time.perf_counter()
  interactions = data_lib.load_interactions(config)
  seconds = time.perf_counter() - start
  fn = None
  if name in FN_DATASETS:
    with config.unlocked():
      config.split = "fn"
    fn = len(data_lib.load_split(config).fn)
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
  folder = data_lib.resolve_data_dir(data_dir)
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
