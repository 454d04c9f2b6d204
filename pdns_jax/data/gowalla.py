"""Gowalla as NGCF/LightGCN preprocessed it, keeping its own train/test split.

Files (../shared/data/gowalla/SOURCE.md): `train.txt` and `test.txt`, one line
per user, `user item item ...`, 0-based ids, no timestamps. Either may be
gzipped, and test.txt may sit in `lightgcn_raw/` as in ../shared/data. The
test pairs are flagged in `Interactions.is_test`, so make_split keeps them and
carves validation 8:1 out of train (PAPER.md 5).
"""

from __future__ import annotations

import pathlib

import numpy as np

from pdns_jax.data.core import DataError, Interactions
from pdns_jax.data.io import iter_rows, parse_ints
from pdns_jax.data.sources import require_file
from pdns_jax.data.tables import plain_or_gz

SUBFOLDERS = ("", "lightgcn_raw")


def find_file(data_dir: pathlib.Path, name: str) -> pathlib.Path:
  """`gowalla/<name>` or `gowalla/lightgcn_raw/<name>`, plain or `.gz`.

  Raises:
    DataError: where none exists, saying how to get it.
  """
  folder = pathlib.Path(data_dir) / "gowalla"
  for sub in SUBFOLDERS:
    found = plain_or_gz(folder / sub / name)
    if found:
      return found
  return require_file(folder / name, "gowalla")


def read_user_lists(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """Reads a `user item item ...` file into (users, items) int64 arrays."""
  users, items = [], []
  for lineno, fields in iter_rows(path):
    ids = np.array(parse_ints(fields, path, lineno), dtype=np.int64)
    users.append(np.full(len(ids) - 1, ids[0]))
    items.append(ids[1:])
  if not users:
    raise DataError(f"{path}: the file is empty")
  return np.concatenate(users), np.concatenate(items)


def load(data_dir: pathlib.Path) -> Interactions:
  """Reads Gowalla's train and test files into one `Interactions` with is_test.

  A pair listed twice collapses to one; a pair in both files stays test only
  (`Interactions.from_raw` keeps test rows over training rows), so no test
  pair leaks into training.
  """
  train_path, test_path = find_file(data_dir, "train.txt"), find_file(data_dir, "test.txt")
  train_users, train_items = read_user_lists(train_path)
  test_users, test_items = read_user_lists(test_path)
  users = np.concatenate([train_users, test_users])
  items = np.concatenate([train_items, test_items])
  is_test = np.repeat([False, True], [len(train_users), len(test_users)])
  # Rows in (user, item) order: the validation draw depends on row order, and
  # this is the order the published Gowalla results were split in.
  order = np.lexsort((items, users))
  data = Interactions.from_raw(
      users[order], items[order], name="gowalla", is_test=is_test[order],
      source=(f"NGCF/LightGCN Gowalla {train_path} + {test_path}; no timestamps, "
              "its own test split kept"))
  if not data.is_test.any() or data.is_test.all():
    raise DataError(f"gowalla: {train_path} and {test_path} must both hold pairs")
  return data
