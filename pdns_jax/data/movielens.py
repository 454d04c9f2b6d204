"""Movielens-100k from GroupLens' `u.data`: every rating is a positive."""

from __future__ import annotations

import pathlib

import numpy as np

from pdns_jax.data.core import DataError, Interactions
from pdns_jax.data.io import iter_rows, parse_ints
from pdns_jax.data.sources import require_file


def load(data_dir: pathlib.Path, folder: str = "ml-100k") -> Interactions:
  """Reads `<data_dir>/ml-100k/u.data` (user, item, rating, time; tab-separated).

  Raises:
    DataError: naming the file (and line) where it is absent, unreadable or
      has a line that is not four tab-separated fields.
  """
  path = require_file(pathlib.Path(data_dir) / folder / "u.data", "ml100k")
  rows = [parse_ints(fields, path, lineno, expected=4, columns=(0, 1, 3))
          for lineno, fields in iter_rows(path, sep="\t")]
  if not rows:
    raise DataError(f"{path}: the file is empty")
  table = np.asarray(rows, dtype=np.int64)
  return Interactions.from_raw(table[:, 0], table[:, 1], table[:, 2], name="ml100k",
                               source=f"GroupLens Movielens-100k {path}")
