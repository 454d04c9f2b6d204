"""The dataset types every loader produces, and the paper's splits.

Data flows one way: a loader reads its source files into raw (user, item)
rows and hands them to `Interactions.from_raw`, the one place where repeated
pairs collapse and raw ids become 0-based contiguous ids (the raw id of each is
kept); `make_split` applies PAPER.md section 5 and returns a `Split`;
`load_split` (cache.py) caches that split as an npz written atomically.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
from typing import Optional

from absl import logging
import numpy as np

# Bump when a split's definition changes, so stale caches are not reused.
CACHE_VERSION = 6

PARTS = ("train", "valid", "test", "fn")


class DataError(ValueError):
  """A problem with a data file or a data setting that the user can fix."""


def _ids_or_arange(ids: Optional[np.ndarray], count: int, what: str,
                   name: str) -> np.ndarray:
  """The raw id per internal id: `ids` checked, or 0..count-1 where None."""
  if ids is None:
    return np.arange(count, dtype=np.int64)
  ids = np.asarray(ids, np.int64)
  if ids.shape != (count,):
    raise DataError(f"{name}: {len(ids)} raw {what} ids for {count} {what}s")
  return ids


@dataclasses.dataclass(frozen=True)
class Interactions:
  """One dataset as distinct user-item pairs with 0-based contiguous ids.

  Build it from a source's rows with `from_raw`, which collapses repeated
  pairs; constructed directly, repeated pairs are an error, so a pair can never
  land in two parts of a split.

  Attributes:
    users: int64 (n,) user id per interaction.
    items: int64 (n,) item id per interaction.
    timestamps: int64 (n,) or None where the source has no times.
    num_users: number of users (ids are 0..num_users-1).
    num_items: number of items.
    name: dataset name (`ml100k`, `gowalla`, ...).
    source: one line saying which files the data came from.
    is_test: bool (n,) for sources that come already split (Gowalla), else None.
    user_ids: int64 (num_users,) the source's id of each user (0..num_users-1
      where None is given).
    item_ids: int64 (num_items,) the source's id of each item, likewise.
  """

  users: np.ndarray
  items: np.ndarray
  timestamps: Optional[np.ndarray]
  num_users: int
  num_items: int
  name: str
  source: str
  is_test: Optional[np.ndarray] = None
  user_ids: Optional[np.ndarray] = None
  item_ids: Optional[np.ndarray] = None

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
    repeated = n - len(unique_pairs(np.stack([self.users, self.items], 1))[0])
    if repeated:
      raise DataError(f"{self.name}: {repeated} repeated (user, item) pairs; build "
                      "it with Interactions.from_raw, which collapses them")
    # Frozen: the defaults are filled in once, here.
    object.__setattr__(self, "user_ids", _ids_or_arange(
        self.user_ids, self.num_users, "user", self.name))
    object.__setattr__(self, "item_ids", _ids_or_arange(
        self.item_ids, self.num_items, "item", self.name))

  @classmethod
  def from_raw(cls, raw_users, raw_items, timestamps=None, *, name: str,
               source: str, is_test=None) -> "Interactions":
    """Collapses repeated pairs and compacts the source's ids; every loader's exit.

    Of a repeated (user, item) pair one row stays: a test row over a training
    row (sources with their own test split), then the latest time, then the
    last in the file. Kept rows stay in the source's order, so a file listing
    every row twice splits exactly as the file listing each once. Any integer
    ids are accepted; one log line gives their ranges, so ids that are not the
    expected 0..n-1 or 1..n (negative, huge, sparse) are seen.

    Args:
      raw_users, raw_items: int (n,) the source's ids, one row per interaction.
      timestamps: int (n,) or None.
      name: dataset name.
      source: one line saying which files the rows came from.
      is_test: bool (n,) or None, for sources that come already split.

    Returns:
      The dataset with ids 0..num_users-1 and 0..num_items-1, numbered in
      increasing raw id; `user_ids` and `item_ids` map them back.
    """
    raw_users = np.asarray(raw_users, np.int64)
    raw_items = np.asarray(raw_items, np.int64)
    if len(raw_users) == 0:
      raise DataError(f"{name}: no interactions in {source}")
    keep = _last_of_each_pair(raw_users, raw_items, timestamps, is_test)
    dropped = len(raw_users) - len(keep)
    raw_users, raw_items = raw_users[keep], raw_items[keep]
    user_ids, users = np.unique(raw_users, return_inverse=True)
    item_ids, items = np.unique(raw_items, return_inverse=True)
    logging.info(
        "%s: %s users (raw ids %d..%d), %s items (raw ids %d..%d), %s interactions; "
        "%s repeated (user, item) rows collapsed", name, f"{len(user_ids):,}",
        user_ids[0], user_ids[-1], f"{len(item_ids):,}", item_ids[0], item_ids[-1],
        f"{len(keep):,}", f"{dropped:,}")
    return cls(
        users=users.astype(np.int64), items=items.astype(np.int64),
        timestamps=None if timestamps is None else np.asarray(timestamps, np.int64)[keep],
        num_users=len(user_ids), num_items=len(item_ids), name=name, source=source,
        is_test=None if is_test is None else np.asarray(is_test, bool)[keep],
        user_ids=user_ids, item_ids=item_ids)

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
  user_ids: Optional[np.ndarray] = None
  item_ids: Optional[np.ndarray] = None

  def __post_init__(self):
    # Frozen: the defaults (ids are their own raw ids) are filled in once, here.
    object.__setattr__(self, "user_ids", _ids_or_arange(
        self.user_ids, self.num_users, "user", self.name))
    object.__setattr__(self, "item_ids", _ids_or_arange(
        self.item_ids, self.num_items, "item", self.name))

  def save(self, path: pathlib.Path) -> None:
    """Writes the split as one npz, atomically (temp file + rename)."""
    arrays = {k: getattr(self, k) for k in PARTS + ("user_ids", "item_ids")}
    meta = np.array([self.num_users, self.num_items], np.int64)
    atomic_write(path, lambda f: np.savez(
        f, meta=meta, name=np.array(self.name), source=np.array(self.source),
        description=np.array(self.description), **arrays))

  @classmethod
  def load(cls, path: pathlib.Path) -> "Split":
    """Reads a split `save` wrote; raises (KeyError, ValueError, OSError) otherwise."""
    with np.load(path) as z:
      num_users, num_items = (int(v) for v in z["meta"])
      return cls(num_users, num_items, z["train"], z["valid"], z["test"],
                 z["fn"], str(z["name"]), str(z["description"]), str(z["source"]),
                 user_ids=z["user_ids"], item_ids=z["item_ids"])

  def counts(self) -> dict:
    return {k: len(getattr(self, k)) for k in PARTS}

  @property
  def num_interactions(self) -> int:
    """Pairs in all parts together: the dataset's interactions."""
    return sum(self.counts().values())


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


def _last_of_each_pair(users, items, timestamps, is_test) -> np.ndarray:
  """Indices of one row per distinct (user, item), in increasing order.

  The row kept is the greatest by (is_test, time, position): sorting stably
  by those within each pair and taking the pair's last row.
  """
  keys = [k for k in (timestamps, is_test) if k is not None]
  order = np.lexsort(tuple(keys) + (items, users))
  u, i = users[order], items[order]
  last = np.ones(len(order), bool)
  last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
  return np.sort(order[last])


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
  """Collapses repeated (user, item) pairs to one, keeping the latest timestamp.

  For loaders that must shrink rows while streaming (tianchi.py); their rows
  still end in `Interactions.from_raw`, which applies the same rule.
  """
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


def make_split(data: Interactions, kind: str = "paper", seed: int = 0,
               valid_order: str = "time") -> Split:
  """Applies PAPER.md section 5.

  Args:
    data: the dataset.
    kind: "paper" (latest 10% per user by time = test, the rest 8:1 train/valid,
      in time order; random 10% where there are no timestamps; the source's own
      test split where it has one) or "fn" (per user 4:1:1 train/test/false
      negatives at random, validation carved 8:1 out of train).
    seed: seeds every random choice; the temporal split uses none.
    valid_order: for the temporal split, how the 8:1 train/valid division of
      the non-test part is made: "time" (the latest ninth is validation) or
      "random" (a seeded random ninth); PAPER.md's "divided by 8:1" allows both.

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
    if valid_order == "random" and data.timestamps is not None:
      in_train, in_valid = _carve_valid(users, items, ~test_mask, rng, data.num_users)
      description = description.replace("in time order", "at random (valid_order)")
    elif valid_order in ("time", "random"):
      in_valid[order] = (ranks >= sizes - n_test - n_valid) & (ranks < sizes - n_test)
      in_train = ~(test_mask | in_valid)
    else:
      raise DataError(f"config.valid_order: {valid_order!r}; use 'time' or 'random'")
  else:
    raise DataError(f"config.split: unknown split {kind!r}; use 'paper' or 'fn'")
  split = Split(
      num_users=data.num_users, num_items=data.num_items,
      train=_pairs(users, items, in_train), valid=_pairs(users, items, in_valid),
      test=_pairs(users, items, test_mask), fn=_pairs(users, items, fn_mask),
      name=data.name, description=description, source=data.source,
      user_ids=data.user_ids, item_ids=data.item_ids)
  check_split(split)
  return split


def check_split(split: Split) -> None:
  """Rejects splits the sampler cannot serve, or that leak pairs between parts.

  Raises:
    DataError: naming the dataset, where training is empty, a (user, item)
      pair lies in two parts (or twice in one), or a user has every item.
  """
  if len(split.train) == 0:
    raise DataError(f"{split.name}: the training split is empty")
  _check_disjoint(split)
  degree = np.bincount(split.train[:, 0], minlength=split.num_users)
  full = np.flatnonzero(degree >= split.num_items)
  if len(full):
    raise DataError(
        f"{split.name}: user {full[0]} interacted with every item in training, so "
        "no negative can be drawn; drop such users before training")


def _check_disjoint(split: Split) -> None:
  """Raises where train, valid, test and fn share a pair (or one repeats one)."""
  parts = [np.asarray(getattr(split, k), np.int64).reshape(-1, 2) for k in PARTS]
  keys = np.concatenate([p[:, 0] * split.num_items + p[:, 1] for p in parts])
  labels = np.repeat(np.arange(len(PARTS)), [len(p) for p in parts])
  order = np.argsort(keys, kind="stable")
  keys, labels = keys[order], labels[order]
  clash = np.flatnonzero(keys[1:] == keys[:-1])
  if len(clash):
    first, second = PARTS[labels[clash[0]]], PARTS[labels[clash[0] + 1]]
    user, item = divmod(int(keys[clash[0]]), split.num_items)
    where = f"both {first} and {second}" if first != second else f"{first} twice"
    raise DataError(
        f"{split.name}: {len(clash)} (user, item) pairs repeat across the split's "
        f"parts, e.g. ({user}, {item}) in {where}; a repeated pair would be "
        "trained on and tested on at once")
