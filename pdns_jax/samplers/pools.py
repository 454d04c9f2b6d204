"""Candidate pools with exact exclusion: the building block of every sampler.

Candidates are uniform over I \\ I_u, drawn exactly on device with no
rejection loop: draw a uniform rank r among the user's n_items - |I_u|
non-positives and map it to an item id with a binary search over the user's
sorted positives. With sorted positives p_0 < p_1 < ... the number of
non-positives below p_k is g_k = p_k - k (non-decreasing), and the r-th
non-positive is r + #{k : g_k <= r}.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from pdns_jax.data.core import unique_pairs


@flax.struct.dataclass
class SortedSets:
  """Per-user sorted item sets in CSR form, ready for on-device binary search.

  Attributes:
    indptr: int32 (U + 1,) user u's items are values[indptr[u]:indptr[u+1]].
    items: int32 (nnz,) sorted within each user.
    gaps: int32 (nnz,) items[k] - (k - indptr[u]): non-members below each member.
    search_steps: static number of bisection steps (covers the largest set).
  """

  indptr: jax.Array
  items: jax.Array
  gaps: jax.Array
  search_steps: int = flax.struct.field(pytree_node=False)

  @property
  def sizes(self) -> jax.Array:
    return self.indptr[1:] - self.indptr[:-1]


def sorted_sets(pairs: np.ndarray, num_users: int,
                like: np.ndarray | None = None) -> SortedSets:
  """Builds `SortedSets` on the host from int (n, 2) (user, item) pairs.

  Args:
    pairs: the (user, item) pairs; repeats are dropped.
    num_users: number of users.
    like: optional superset of `pairs`. The arrays are then padded to its size
      and searched with its step count, so that every subset of it has the same
      shapes and a jitted function taking them never recompiles (the simulation
      grows the excluded set in stages).
  """
  users, items = unique_pairs(pairs)
  sizes = np.bincount(users, minlength=num_users)
  indptr = np.concatenate([[0], np.cumsum(sizes)])
  local = np.arange(len(items)) - indptr[users]
  gaps = items - local
  like_users = users if like is None else unique_pairs(like)[0]
  largest_sizes = np.bincount(like_users, minlength=num_users)
  steps = int(np.ceil(np.log2(max(int(largest_sizes.max(initial=0)), 1) + 1))) + 1
  # Entries past indptr[-1] are never reached by a search; they only fix the shape
  # (and keep gathers in bounds for an empty set).
  capacity = max(1, len(like_users))
  padding = np.zeros(capacity - len(items), np.int64)
  return SortedSets(indptr=jnp.asarray(indptr, jnp.int32),
                    items=jnp.asarray(np.concatenate([items, padding]), jnp.int32),
                    gaps=jnp.asarray(np.concatenate([gaps, padding]), jnp.int32),
                    search_steps=steps)


def count_at_most(values: jax.Array, start, end, target, steps: int):
  """Index of the first k in [start, end) with values[k] > target (sorted values)."""
  def body(_, bounds):
    lo, hi = bounds
    mid = (lo + hi) // 2
    go_right = (mid < hi) & (values[mid] <= target)
    return jnp.where(go_right, mid + 1, lo), jnp.where(go_right, hi, mid)
  lo, _ = jax.lax.fori_loop(0, steps, body, (start, end))
  return lo


def candidate_pool(key: jax.Array, user: jax.Array, exclude: SortedSets,
                   num_items: int, pool_size: int) -> jax.Array:
  """Draws `pool_size` items uniformly (with replacement) from I \\ I_u for one user.

  Args:
    key: PRNG key.
    user: scalar user id.
    exclude: the items the user may not get as negatives (training positives,
      plus revealed false negatives in the simulation).
    num_items: |I|.
    pool_size: H.

  Returns:
    int32 (pool_size,) item ids, none of them in the user's excluded set.
  """
  start, end = exclude.indptr[user], exclude.indptr[user + 1]
  num_free = num_items - (end - start)
  ranks = jnp.floor(jax.random.uniform(key, (pool_size,)) * num_free).astype(jnp.int32)
  ranks = jnp.minimum(ranks, num_free - 1)
  search = lambda r: count_at_most(exclude.gaps, start, end, r, exclude.search_steps)
  return ranks + jax.vmap(search)(ranks) - start


def contains(sets: SortedSets, user: jax.Array, item: jax.Array) -> jax.Array:
  """Whether `item` is in the user's set (one user, one item)."""
  start, end = sets.indptr[user], sets.indptr[user + 1]
  at = count_at_most(sets.items, start, end, item - 1, sets.search_steps)
  return (at < end) & (sets.items[jnp.minimum(at, sets.items.shape[0] - 1)] == item)


def batch_pools(key: jax.Array, users: jax.Array, exclude: SortedSets, num_items: int,
                pool_size: int) -> jax.Array:
  """`candidate_pool` for every user of a batch, one key each: int32 (B, pool_size)."""
  draw = lambda k, u: candidate_pool(k, u, exclude, num_items, pool_size)
  return jax.vmap(draw)(jax.random.split(key, users.shape[0]), users)
