"""Taobao and Tmall as the paper builds them from the raw Tianchi logs (PAPER.md 4).

Every behaviour (click, cart, favourite, buy) is a positive; repeated (user,
item) pairs collapse to one interaction at the latest time; users with fewer
than `config.subset.min_interactions` interactions are dropped (one pass, not
iterated); a seeded random `config.subset.num_users` of the rest are kept (all
of them where fewer qualify, and the source string says so). make_split then
holds out the latest 10% per user.

The logs are gigabytes (UserBehavior.csv: about 100M rows), so they are
streamed, in chunks and twice: pass 1 counts rows per user, since a user with
fewer rows than the threshold cannot qualify; pass 2 keeps only the rows of
users visited in a seeded random order until enough of them qualify. Memory
grows with the number of users and the rows of the users a pass keeps (about
twice the subset), never with the file; with num_users = 0 one pass keeps all.

Where the raw file is absent, the registry in `pdns_jax.data` loads the
public substitutes (substitutes.py) instead, which go through the same
`preprocess`; this module knows nothing of them.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable, Iterator, Optional

import numpy as np

from pdns_jax.data.core import DataError, Interactions, dedupe
from pdns_jax.data.tables import CHUNK_BYTES, TableSpec, iter_table, plain_or_gz

# Users whose rows one selection pass keeps at least (see preprocess).
MIN_BATCH_USERS = 1 << 16

# A source of (raw users, raw items, times or None) chunks; called once per pass.
Chunks = Callable[[], Iterator[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]]


@dataclasses.dataclass(frozen=True)
class RawLog:
  """One raw Tianchi log: its file name in `<data_dir>/<dataset>/` and layout."""

  label: str
  filename: str
  spec: TableSpec  # columns: user, item, time


RAW_LOGS = {
    # user_id,item_id,category_id,behavior_type,timestamp (unix s); no header.
    "taobao": RawLog("Tianchi Taobao UserBehavior log", "UserBehavior.csv",
                     TableSpec(sep=",", num_fields=5, columns=(0, 1, 4))),
    # user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type with a
    # header; time_stamp is mmdd (829 = 29 August), which orders within 2014.
    "tmall": RawLog("Tianchi IJCAI-15 Tmall user log", "user_log_format1.csv",
                    TableSpec(sep=",", num_fields=7, columns=(0, 1, 5),
                              header="user_id")),
}


def find_raw(data_dir: pathlib.Path, dataset: str) -> Optional[pathlib.Path]:
  """The raw log `<data_dir>/<dataset>/<file>[.gz]`, or None where absent."""
  return plain_or_gz(pathlib.Path(data_dir) / dataset / RAW_LOGS[dataset].filename)


def load_raw(path: pathlib.Path, dataset: str, *, min_interactions: int,
             num_users: int, seed: int, chunk_bytes: int = CHUNK_BYTES) -> Interactions:
  """Streams one raw Tianchi log through `preprocess`.

  Args:
    path: UserBehavior.csv (taobao) or user_log_format1.csv (tmall), plain or .gz.
    dataset: "taobao" or "tmall", which says the layout.
    min_interactions: users with fewer distinct items are dropped.
    num_users: size of the seeded random user subset; 0 keeps every user.
    seed: seeds the subset.
    chunk_bytes: bytes parsed at a time.
  """
  log = RAW_LOGS[dataset]

  def chunks():
    for table in iter_table(path, log.spec, chunk_bytes):
      yield table[:, 0], table[:, 1], table[:, 2]

  users, items, times, note = preprocess(
      chunks, min_interactions=min_interactions, num_users=num_users, seed=seed)
  return Interactions.from_raw(
      users, items, times, name=dataset,
      source=(f"{log.label} {path} (the paper's source): every behaviour a "
              f"positive, repeats collapsed to the latest time; {note}"))


def user_priority(raw_users: np.ndarray, seed: int) -> np.ndarray:
  """A seeded pseudo-random uint64 key per raw user id (splitmix64).

  Users are visited in increasing key order. The key depends only on (seed,
  id), so which users are kept does not depend on how the file is chunked or
  on how many passes the selection needs; splitmix64 is a bijection, so no two
  ids tie.
  """
  offset = np.uint64((seed * 0x9E3779B97F4A7C15) % (1 << 64))
  z = np.asarray(raw_users).astype(np.uint64) + offset
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return z ^ (z >> np.uint64(31))


def preprocess(chunks: Chunks, *, min_interactions: int, num_users: int,
               seed: int) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], str]:
  """Collapses repeats, keeps users with enough interactions, draws the subset.

  Args:
    chunks: called once per pass over the data.
    min_interactions: users with fewer distinct items are dropped.
    num_users: keep this many qualifying users, drawn at random (seeded); 0
      (or more than qualify) keeps every qualifying user.
    seed: seeds the draw.

  Returns:
    (users, items, times or None, note): the kept users' deduplicated rows in
    raw ids, and one sentence saying how many users qualified and were kept.

  Raises:
    DataError: for negative settings, or when no user qualifies.
  """
  if num_users < 0 or min_interactions < 0:
    raise DataError("config.subset: num_users and min_interactions must be >= 0")
  rule = f"users with >= {min_interactions} interactions"
  if num_users == 0:
    rows = _collect(chunks, keep=None)
    ids, counts = np.unique(rows[0], return_counts=True)
    chosen = ids[counts >= min_interactions]
    note = f"all {len(chosen):,} {rule} kept"
    parts = [_rows_of(rows, chosen)]
  else:
    ids, counts = _row_counts(chunks)
    candidates = ids[counts >= min_interactions]
    order = candidates[np.argsort(user_priority(candidates, seed))]
    parts, chosen, qualified, start = [], np.empty(0, np.int64), 0, 0
    while len(chosen) < num_users and start < len(order):
      # Twice the shortfall, or more: one pass in practice, as most qualify.
      batch = order[start:start + max(2 * (num_users - len(chosen)), MIN_BATCH_USERS)]
      start += len(batch)
      rows = _collect(chunks, keep=np.sort(batch))
      ids, counts = np.unique(rows[0], return_counts=True)
      passed = batch[np.isin(batch, ids[counts >= min_interactions])]
      qualified += len(passed)
      taken = np.sort(passed[:num_users - len(chosen)])
      parts.append(_rows_of(rows, taken))
      chosen = np.concatenate([chosen, taken])
    if start < len(order):
      note = (f"a seeded random {len(chosen):,} of the {rule} kept (data_seed "
              f"{seed}; {len(candidates):,} users have >= {min_interactions} rows)")
    elif qualified >= num_users:
      note = (f"{qualified:,} {rule}; a seeded random {num_users:,} of them kept "
              f"(data_seed {seed})")
    else:
      note = (f"only {qualified:,} {rule}, fewer than the {num_users:,} asked "
              "for: all of them kept")
  if len(chosen) == 0:
    raise DataError(f"no user has at least {min_interactions} interactions; "
                    "lower config.subset.min_interactions")
  return (*_concat(parts), note)


def _rows_of(rows: tuple, sorted_users: np.ndarray) -> tuple:
  """The (users, items, times or None) rows whose user is in sorted_users."""
  users, items, times = rows
  mask = _member(users, sorted_users)
  return users[mask], items[mask], None if times is None else times[mask]


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
  """values in sorted_set, elementwise (faster than np.isin for a sorted set)."""
  if len(sorted_set) == 0:
    return np.zeros(len(values), bool)
  at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
  return sorted_set[at] == values


def _concat(parts):
  """Concatenates a list of column tuples column by column (None stays None)."""
  if not parts:
    raise DataError("no data rows")
  return tuple(None if column[0] is None else np.concatenate(column)
               for column in zip(*parts))


class _Compacting:
  """Collects column tuples, re-reducing them whenever they double in size.

  Per-chunk results are small but many; reducing (dedupe, count merge) only
  when the pile doubles keeps memory at about twice the reduced size while
  costing amortised O(1) reductions per row.
  """

  def __init__(self, reduce):
    self._reduce = reduce
    self._parts, self._size, self._reduced_size = [], 0, 0

  def add(self, *columns):
    self._parts.append(columns)
    self._size += len(columns[0])
    if self._size > 2 * self._reduced_size + (1 << 20):
      self._compact()

  def _compact(self):
    self._parts = [self._reduce(*_concat(self._parts))]
    self._size = self._reduced_size = len(self._parts[0][0])

  def result(self):
    self._compact()
    return self._parts[0]


def _merge_counts(ids, counts):
  ids, inverse = np.unique(ids, return_inverse=True)
  return ids, np.bincount(inverse, weights=counts).astype(np.int64)


def _row_counts(chunks: Chunks) -> tuple[np.ndarray, np.ndarray]:
  """Pass 1: (raw user ids, rows per user), repeats included."""
  counter = _Compacting(_merge_counts)
  for users, _, _ in chunks():
    counter.add(*np.unique(users, return_counts=True))
  return counter.result()


def _collect(chunks: Chunks, keep: Optional[np.ndarray]):
  """Pass 2: the deduplicated rows of the users in `keep` (all if None)."""
  rows = _Compacting(dedupe)
  for chunk in chunks():
    rows.add(*dedupe(*(chunk if keep is None else _rows_of(chunk, keep))))
  return rows.result()
