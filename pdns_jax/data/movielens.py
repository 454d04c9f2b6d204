"""Movielens-100k from GroupLens' `u.data`: every rating is a positive."""

from __future__ import annotations

import pathlib

import numpy as np

from pdns_jax import data as data_lib
from pdns_jax.data.core import DataError, Interactions, compact_ids
from pdns_jax.data.io import iter_rows, parse_ints


def load(data_dir: pathlib.Path, folder: str = "ml-100k") -> Interactions:
  """Reads `<data_dir>/ml-100k/u.data` (user, item, rating, time; tab-separated)."""
  path = data_lib.require_file(pathlib.Path(data_dir) / folder / "u.data", "ml100k")
  rows = [parse_ints(fields, path, lineno, expected=4)
          for lineno, fields in iter_rows(path, sep="\t")]
  if not rows:
    raise DataError(f"{path}: the file is empty")
  table = np.asarray(rows, dtype=np.int64)
  users, items, num_users, num_items = compact_ids(table[:, 0], table[:, 1])
  return Interactions(users=users, items=items, timestamps=table[:, 3],
                      num_users=num_users, num_items=num_items, name="ml100k",
                      source=f"GroupLens Movielens-100k {path}")
