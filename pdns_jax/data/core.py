"""The dataset types every loader produces, the paper's splits, and the split cache.

Data flows one way: a loader turns its source files into one `Interactions`
(0-based contiguous ids, timestamps where the source has them); `make_split`
applies PAPER.md section 5 and returns a `Split`; `load_split` in
`pdns_jax.data` caches that split as an npz written atomically.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
from typing import Optional

import numpy as np

# Bump when a split's definition changes, so stale caches are not reused.
CACHE_VERSION = 5


class DataError(ValueError):
  """A problem with a data file or a data setting that the user can fix."""


@dataclasses.dataclass(frozen=True)
class Interactions:
  """One dataset as observed user-item pairs with 0-based contiguous ids.

  Attributes:
    users: int64 (n,) user id per interaction.
    items: int64 (n,) item id per interaction.
    timestamps: int64 (n,) or None where the source has no times.
    num_users: number of users (ids are 0..num_users-1).
    num_items: number of items.
    name: dataset name (`ml100k`, `gowalla`, ...).
    source: one line saying which files the data came from.
    is_test: bool (n,) for sources that come already split (Gowalla), else None.
  """

  users: np.ndarray
  items: np.ndarray
  timestamps: Optional[np.ndarray]
  num_users: int
  num_items: int
  name: str
  source: str
  is_test: Optional[np.ndarray] = None

  def __post_init__(self):
    n = len(self.users)
    if len(self.items) != n:
      raise DataError(f"{self.name}: users and items differ in length")
    if n == 0:
      raise DataError(f"{self.name}: no interactions in {self.source}")
    if self.users.min() < 0 or self.users.max() >= self.num_users:
      raise DataError(f"{self.name}: user id out of range [0, {self.num_users})")
    if self.items.min() < 0 or self.items.max() >= self.num_items:
      raise DataError(f"{self.name}: item id out of range [0, {self.num_items})")

  @property
  def num_interactions(self) -> int:
    return len(self.users)


@dataclasses.dataclass(frozen=True)
class Split:
  """Train / valid / test (and false-negative) pairs, each int32 (n, 2) of (user, item).

  `fn` is empty unless the split is the 4:1:1 simulation split (PAPER.md 5).
  `description` says how the split was made and `source` which files the data
  came from; runs print both.
  """

  num_users: int
  num_items: int
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
  fn: np.ndarray
  name: str
  description: str
  source: str = ""

  def save(self, path: pathlib.Path) -> None:
    """Writes the split as one npz, atomically (temp file + rename)."""
    arrays = {k: getattr(self, k) for k in ("train", "valid", "test", "fn")}
    meta = np.array([self.num_users, self.num_items], np.int64)
    atomic_write(path, lambda f: np.savez(
        f, meta=meta, name=np.array(self.name), source=np.array(self.source),
        description=np.array(self.description), **arrays))

  @classmethod
  def load(cls, path: pathlib.Path) -> "Split":
    with np.load(path) as z:
      num_users, num_items = (int(v) for v in z["meta"])
      return cls(num_users, num_items, z["train"], z["valid"], z["test"],
                 z["fn"], str(z["name"]), str(z["description"]), str(z["source"]))

  def counts(self) -> dict:
    return {k: len(getattr(self, k)) for k in ("train", "valid", "test", "fn")}


def atomic_write(path: pathlib.Path, write) -> None:
  """Calls write(file) on a temp file beside `path`, then renames it into place.

  A crash mid-write leaves no partial file under `path`.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def compact_ids(raw_users: np.ndarray, raw_items: np.ndarray):
  """Maps arbitrary integer ids to 0-based contiguous ids (sorted by raw id)."""
  user_ids, users = np.unique(raw_users, return_inverse=True)
  item_ids, items = np.unique(raw_items, return_inverse=True)
  return users.astype(np.int64), items.astype(np.int64), len(user_ids), len(item_ids)


def unique_pairs(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Distinct (user, item) pairs sorted by user then item, as two int64 arrays.

  Sorts one int64 key per pair: much faster than np.unique(axis=0).
  """
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  if len(pairs) == 0:
    return pairs[:, 0], pairs[:, 1]
  stride = int(pairs[:, 1].max()) + 1
  keys = np.sort(pairs[:, 0] * stride + pairs[:, 1])
  keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
  return keys // stride, keys % stride


def dedupe(users, items, timestamps=None):
  """Collapses repeated (user, item) pairs to one, keeping the latest timestamp."""
  if timestamps is None:
    users, items = unique_pairs(np.stack([users, items], 1))
    return users, items, None
  order = np.lexsort((-timestamps, items, users))
  u, i, t = users[order], items[order], timestamps[order]
  first = np.ones(len(u), bool)
  first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
  return u[first], i[first], t[first]


def _round_half_up(x):
  return np.floor(x + 0.5).astype(np.int64)


def _ranks_within_user(users, keys, num_users):
  """Sorts interactions by (user, key) and returns (order, rank in user, user size)."""
  order = np.lexsort((keys, users))
  sorted_users = users[order]
  sizes = np.bincount(sorted_users, minlength=num_users)
  starts = np.cumsum(sizes) - sizes
  ranks = np.arange(len(order)) - starts[sorted_users]
  return order, ranks, sizes[sorted_users]


def _pairs(users, items, mask):
  pairs = np.stack([users[mask], items[mask]], 1).astype(np.int32)
  return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _carve_valid(users, items, in_train, rng, num_users):
  """Moves a random 1/9 of each user's training part to validation (8:1)."""
  keys = rng.random(len(users))
  keys[~in_train] = 2.0  # non-train rows sort last, after every train row
  order, ranks, _ = _ranks_within_user(users, keys, num_users)
  train_sizes = np.bincount(users[in_train], minlength=num_users)
  n_valid = _round_half_up(train_sizes / 9.0)
  in_valid = np.zeros(len(users), bool)
  in_valid[order] = ranks < n_valid[users[order]]
  return in_train & ~in_valid, in_valid


def make_split(data: Interactions, kind: str = "paper", seed: int = 0) -> Split:
  """Applies PAPER.md section 5.

  Args:
    data: the dataset.
    kind: "paper" (latest 10% per user by time = test, the rest 8:1 train/valid,
      in time order; random 10% where there are no timestamps; the source's own
      test split where it has one) or "fn" (per user 4:1:1 train/test/false
      negatives at random, validation carved 8:1 out of train).
    seed: seeds every random choice; the temporal split uses none.

  Returns:
    The split, with a description of how it was made.
  """
  rng = np.random.default_rng(seed)
  users, items, n = data.users, data.items, data.num_interactions
  fn_mask = np.zeros(n, bool)
  if kind == "fn":
    order, ranks, sizes = _ranks_within_user(users, rng.random(n), data.num_users)
    n_test = _round_half_up(sizes / 6.0)
    # Rounded up, the FN share reproduces the paper's Table 1 FN set exactly
    # on Movielens-100k (17,057); rounding half up gives 16,759.
    n_fn = np.ceil(sizes / 6.0).astype(np.int64)
    test_mask = np.zeros(n, bool)
    test_mask[order] = ranks < n_test
    fn_mask[order] = (ranks >= n_test) & (ranks < n_test + n_fn)
    in_train, in_valid = _carve_valid(users, items, ~(test_mask | fn_mask), rng,
                                      data.num_users)
    description = ("4:1:1 random train/test/false-negative split per user; "
                   "validation carved 8:1 out of train")
  elif kind == "paper" and data.is_test is not None:
    test_mask = data.is_test.astype(bool)
    in_train, in_valid = _carve_valid(users, items, ~test_mask, rng, data.num_users)
    description = ("the source's own test split kept (it comes pre-split); "
                   "validation carved 8:1 at random out of its training part")
  elif kind == "paper":
    if data.timestamps is not None:
      # Ties in time break by item id so the split is reproducible.
      keys = data.timestamps * np.int64(data.num_items + 1) + items
      description = ("temporal split: latest 10% per user = test, the rest "
                     "8:1 train/valid in time order")
    else:
      keys = rng.random(n)
      description = ("no timestamps: seeded random 10% per user = test, the rest "
                     "8:1 train/valid at random")
    order, ranks, sizes = _ranks_within_user(users, keys, data.num_users)
    n_test = _round_half_up(sizes / 10.0)
    n_valid = _round_half_up((sizes - n_test) / 9.0)
    test_mask = np.zeros(n, bool)
    in_valid = np.zeros(n, bool)
    test_mask[order] = ranks >= sizes - n_test
    in_valid[order] = (ranks >= sizes - n_test - n_valid) & (ranks < sizes - n_test)
    in_train = ~(test_mask | in_valid)
  else:
    raise DataError(f"config.split: unknown split {kind!r}; use 'paper' or 'fn'")
  split = Split(
      num_users=data.num_users, num_items=data.num_items,
      train=_pairs(users, items, in_train), valid=_pairs(users, items, in_valid),
      test=_pairs(users, items, test_mask), fn=_pairs(users, items, fn_mask),
      name=data.name, description=description, source=data.source)
  check_split(split)
  return split


def check_split(split: Split) -> None:
  """Rejects splits the sampler cannot serve."""
  if len(split.train) == 0:
    raise DataError(f"{split.name}: the training split is empty")
  degree = np.bincount(split.train[:, 0], minlength=split.num_users)
  full = np.flatnonzero(degree >= split.num_items)
  if len(full):
    raise DataError(
        f"{split.name}: user {full[0]} interacted with every item in training, so "
        "no negative can be drawn; drop such users before training")
