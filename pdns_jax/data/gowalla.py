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

from pdns_jax import data as data_lib
from pdns_jax.data.core import DataError, Interactions, compact_ids, dedupe
from pdns_jax.data.io import iter_rows, parse_ints
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
  return data_lib.require_file(folder / name, "gowalla")


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

  A pair listed twice collapses to one; a pair in both files stays test only,
  so no test pair leaks into training.
  """
  train_path, test_path = find_file(data_dir, "train.txt"), find_file(data_dir, "test.txt")
  train_users, train_items = read_user_lists(train_path)
  test_users, test_items = read_user_lists(test_path)
  in_test = np.concatenate([np.zeros(len(train_users), np.int64),
                            np.ones(len(test_users), np.int64)])
  # dedupe keeps the largest "time" of a repeated pair: here, test over train.
  users, items, in_test = dedupe(np.concatenate([train_users, test_users]),
                                 np.concatenate([train_items, test_items]), in_test)
  if not in_test.any() or in_test.all():
    raise DataError(f"gowalla: {train_path} and {test_path} must both hold pairs")
  users, items, num_users, num_items = compact_ids(users, items)
  return Interactions(
      users=users, items=items, timestamps=None, num_users=num_users,
      num_items=num_items, name="gowalla", is_test=in_test.astype(bool),
      source=(f"NGCF/LightGCN Gowalla {train_path} + {test_path}; no timestamps, "
              "its own test split kept"))
