"""Public stand-ins for Taobao and Tmall, used where the raw Tianchi log is absent.

The paper's subsets come from Tianchi logs that need an account. These are
MULE's multi-behaviour releases of real Taobao and Tmall data
(../shared/data/{taobao,tmall}/SOURCE.md): one `user item` pair a line,
1-based ids, no timestamps, no clicks. The union of every behaviour file, the
held-out test buys included (they are interactions like any other), is the
positives; then the raw logs' preprocessing (`tianchi.preprocess`): users
with >= 10 interactions, a seeded subset of the paper's size. Without
timestamps, make_split holds out a seeded random 10% per user.
"""

from __future__ import annotations

import pathlib

from pdns_jax.data.core import Interactions
from pdns_jax.data.sources import require_file
from pdns_jax.data.tables import TableSpec, iter_table, plain_or_gz
from pdns_jax.data.tianchi import RAW_LOGS, preprocess

# train.txt is byte-identical to buy.txt in both releases, so it is not read.
BEHAVIOURS = {
    "taobao": ("buy", "cart", "valid", "test"),
    "tmall": ("buy", "cart", "collect", "valid", "test"),
}
# MULE's click file (hundreds of MB) is not in ../shared/data; the paper
# counts clicks as positives, so it is read wherever a user has added it.
OPTIONAL = ("view",)
PAIRS = TableSpec(sep=" ", num_fields=2, columns=(0, 1))


def behaviour_files(data_dir: pathlib.Path, dataset: str) -> list[pathlib.Path]:
  """`<data_dir>/<dataset>/<behaviour>.txt[.gz]` for every behaviour present.

  Raises:
    DataError: where a required behaviour file is absent, saying how to get it.
  """
  folder = pathlib.Path(data_dir) / dataset
  paths = []
  for behaviour in BEHAVIOURS[dataset] + OPTIONAL:
    found = plain_or_gz(folder / f"{behaviour}.txt")
    if found:
      paths.append(found)
    elif behaviour not in OPTIONAL:
      require_file(folder / f"{behaviour}.txt", dataset)
  return paths


def load(data_dir: pathlib.Path, dataset: str, config) -> Interactions:
  """The MULE substitute for "taobao" or "tmall".

  Args:
    data_dir: folder holding the dataset folders.
    dataset: "taobao" or "tmall".
    config: reads subset.min_interactions, subset.num_users and data_seed.
  """
  paths = behaviour_files(data_dir, dataset)

  def chunks():
    for path in paths:
      for table in iter_table(path, PAIRS):
        yield table[:, 0], table[:, 1], None

  users, items, _, note = preprocess(
      chunks, min_interactions=config.subset.min_interactions,
      num_users=config.subset.num_users, seed=config.data_seed)
  names = ", ".join(p.name for p in paths)
  clicks = "clicks from view.txt" if "view" in names else "no clicks"
  return Interactions.from_raw(
      users, items, name=dataset,
      source=(f"SUBSTITUTE, not the paper's Tianchi subset: MULE multi-behaviour "
              f"{dataset} ({names} in {paths[0].parent}; {clicks}, no "
              "timestamps), every behaviour a positive; "
              f"{note}. Put the raw {RAW_LOGS[dataset].filename} in that "
              "folder to use the paper's source"))
