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

from pdns_jax import data as data_lib
from pdns_jax.data.core import DataError, Interactions, compact_ids


def load(data_dir: pathlib.Path) -> Interactions:
  """Reads every nonzero rating of `<data_dir>/douban/training_test_dataset.mat`.

  Users without a rating (one row of the 3000 in GC-MC's file) are dropped so
  that ids stay contiguous.
  """
  path = data_lib.require_file(
      pathlib.Path(data_dir) / "douban" / "training_test_dataset.mat", "douban")
  try:
    with h5py.File(path, "r") as f:
      ratings = np.asarray(f["M"], dtype=np.float64).T
  except (OSError, KeyError, TypeError, ValueError) as e:
    raise DataError(f"{path}: not GC-MC's Douban file (a MATLAB v7.3 / HDF5 file "
                    f"with a ratings matrix M): {e}") from None
  if ratings.ndim != 2:
    raise DataError(f"{path}: M has shape {ratings.shape}; expected users x items")
  users, items = np.nonzero(ratings > 0)
  if len(users) == 0:
    raise DataError(f"{path}: M holds no ratings")
  num_rows = ratings.shape[0]
  users, items, num_users, num_items = compact_ids(users, items)
  return Interactions(
      users=users, items=items, timestamps=None, num_users=num_users,
      num_items=num_items, name="douban",
      source=(f"GC-MC Douban {path}: every rating a positive; {num_rows - num_users} "
              f"of {num_rows} users have no rating and are dropped; no timestamps"))
