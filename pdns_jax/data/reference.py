"""The paper's dataset counts (its Table 1) and ours beside them.

Library code shared by the statistics command (stats.py) and training runs,
which log `describe_split(split)` so every run shows what it trained on and
how that compares with the paper.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

from pdns_jax.data.core import Interactions, Split


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


def measure(data: Union[Interactions, Split], fn: Optional[int] = None) -> Counts:
  """Counts one dataset as Table 1 does.

  Args:
    data: the dataset, or a split of it (all parts together).
    fn: the FN-set size to report, if any.
  """
  cells = data.num_users * data.num_items
  return Counts(data.num_users, data.num_items, data.num_interactions,
                data.num_interactions / cells, fn)


def _counts_text(c: Counts) -> str:
  fn = "" if c.fn is None else f", FN set {c.fn:,}"
  return f"{c.users:,} / {c.items:,} / {c.interactions:,} ({c.density:.5f}){fn}"


def describe_split(split: Split) -> list[str]:
  """The lines a run logs about its data, one log line each.

  Args:
    split: the split the run trains on.

  Returns:
    The source; the split's description and part sizes; users / items /
    interactions / density (and the FN set where there is one) beside the
    paper's Table 1 where the dataset is in it; why they differ, where known.
  """
  counts = split.counts()
  ours = measure(split, counts["fn"] or None)
  lines = [
      f"data: {split.name} from {split.source or '(source not recorded)'}",
      f"split: {split.description}; " + ", ".join(
          f"{part} {n:,}" for part, n in counts.items()),
  ]
  line = (f"{split.name}: {ours.users:,} users / {ours.items:,} items / "
          f"{ours.interactions:,} interactions (density {ours.density:.5f})")
  if ours.fn is not None:
    line += f", FN set {ours.fn:,}"
  paper = PAPER_TABLE1.get(split.name)
  if paper is not None:
    if ours.fn is None:  # compare like with like: no FN set in this split
      paper = dataclasses.replace(paper, fn=None)
    line += f"; paper's Table 1: {_counts_text(paper)}"
  lines.append(line)
  if split.name in DIFFERENCES:
    lines.append(f"note: {DIFFERENCES[split.name]}")
  return lines
