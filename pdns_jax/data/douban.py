"""Douban as GC-MC distributes it: `douban/training_test_dataset.mat`.

A MATLAB v7.3 file, i.e. HDF5 (read with h5py, not scipy.io.loadmat). Its
ratings matrix `M` is stored column-major, so it is transposed to rows =
users (../shared/data/douban/SOURCE.md). Every rating is a positive (PAPER.md 4).
The file's own train/test masks are not used: the paper re-splits Douban 4:1:1
for the false-negative experiments, and there are no timestamps.
"""

from __future__ import annotations

import pathlib

import h5py
import numpy as np

from pdns_jax.data.core import DataError, Interactions
from pdns_jax.data.io import open_binary
from pdns_jax.data.sources import require_file


def load(data_dir: pathlib.Path) -> Interactions:
  """Reads every nonzero rating of `<data_dir>/douban/training_test_dataset.mat`.

  Users without a rating (one row of the 3000 in GC-MC's file) are dropped so
  that ids stay contiguous; `user_ids` and `item_ids` are the matrix's row and
  column indices.
  """
  path = require_file(
      pathlib.Path(data_dir) / "douban" / "training_test_dataset.mat", "douban")
  # Opened here, not by h5py, so an unreadable file is reported as such
  # rather than as "not GC-MC's file".
  with open_binary(path, gunzip=False) as raw:
    try:
      with h5py.File(raw, "r") as f:
        ratings = np.asarray(f["M"], dtype=np.float64).T
    except (OSError, KeyError, TypeError, ValueError) as e:
      raise DataError(f"{path}: not GC-MC's Douban file (a MATLAB v7.3 / HDF5 "
                      f"file with a ratings matrix M): {e}") from None
  if ratings.ndim != 2:
    raise DataError(f"{path}: M has shape {ratings.shape}; expected users x items")
  users, items = np.nonzero(ratings > 0)
  if len(users) == 0:
    raise DataError(f"{path}: M holds no ratings")
  num_rows = ratings.shape[0]
  num_users = len(np.unique(users))
  return Interactions.from_raw(
      users, items, name="douban",
      source=(f"GC-MC Douban {path}: every rating a positive; {num_rows - num_users} "
              f"of {num_rows} users have no rating and are dropped; no timestamps"))
