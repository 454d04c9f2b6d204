"""Candidate pools with exact exclusion: the building block of every sampler.

Candidates are uniform over I \\ I_u, drawn exactly on device with no
rejection loop: draw a uniform rank r among the user's n_items - |I_u|
non-positives and map it to an item id with a binary search over the user's
sorted positives. With sorted positives p_0 < p_1 < ... the number of
non-positives below p_k is g_k = p_k - k (non-decreasing), and the r-th
non-positive is r + #{k : g_k <= r}.
"""

from __future__ import annotations

import math

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
    largest: static size of the largest set (of the superset `like`, if given).
  """

  indptr: jax.Array
  items: jax.Array
  gaps: jax.Array
  search_steps: int = flax.struct.field(pytree_node=False)
  largest: int = flax.struct.field(pytree_node=False, default=0)

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
  largest = int(largest_sizes.max(initial=0))
  steps = int(np.ceil(np.log2(max(largest, 1) + 1))) + 1
  # Entries past indptr[-1] are never reached by a search; they only fix the shape
  # (and keep gathers in bounds for an empty set).
  capacity = max(1, len(like_users))
  padding = np.zeros(capacity - len(items), np.int64)
  return SortedSets(indptr=jnp.asarray(indptr, jnp.int32),
                    items=jnp.asarray(np.concatenate([items, padding]), jnp.int32),
                    gaps=jnp.asarray(np.concatenate([gaps, padding]), jnp.int32),
                    search_steps=steps, largest=largest)


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


def _prefix_sums(x: jax.Array) -> jax.Array:
  """Inclusive cumulative sums over the last (short) axis, as one small product.

  A product with a triangular matrix: faster on a CPU than `jnp.cumsum`'s
  reduce-window for rows of tens of entries. In full float32: a GPU's default
  product rounds its inputs to TF32 (10-bit mantissa), which would skew the draws.
  """
  n = x.shape[-1]
  return jnp.matmul(x, jnp.triu(jnp.ones((n, n), x.dtype)),
                    precision=jax.lax.Precision.HIGHEST)


def _first_above(cdf: jax.Array, target: jax.Array, positive: jax.Array) -> jax.Array:
  """First entry of positive mass whose cdf exceeds the target (last axis).

  Requiring positive mass means rounding in `cdf` can never pick an entry of
  weight 0; if rounding leaves no entry above the target, the last entry of
  positive mass.
  """
  hit = (cdf > target) & positive
  last = positive.shape[-1] - 1 - jnp.argmax(positive[..., ::-1], axis=-1)
  return jnp.where(hit.any(-1), jnp.argmax(hit, axis=-1), last)


def weighted_draws(key: jax.Array, weights: jax.Array, num: int) -> jax.Array:
  """`num` draws per row from unnormalised weights (B, n) >= 0 by a two-level inverse CDF.

  The n entries are grouped in blocks of S = ceil(sqrt(n)): a draw picks a
  block by its mass (cumulative sums over n / S block masses), then an entry
  inside it (cumulative sums over its S weights). Exact in real arithmetic,
  like one inverse CDF over all n entries, but it reads each row once (the
  block sums) instead of a cumulative sum over B x n floats, and it draws
  2 x B x num uniforms where `jax.random.categorical` draws B x n x num Gumbel
  variates. Entries of weight 0 are never drawn; every row needs positive mass.

  Returns:
    int32 (B, num).
  """
  rows, n = weights.shape
  size = max(1, math.isqrt(n - 1) + 1)
  num_blocks = -(-n // size)
  block_mass = jnp.pad(weights, ((0, 0), (0, num_blocks * size - n))).reshape(
      rows, num_blocks, size).sum(-1)
  block_cdf = _prefix_sums(block_mass)  # (B, n / S)
  block_key, item_key = jax.random.split(key)
  target = jax.random.uniform(block_key, (rows, num)) * block_cdf[:, -1:]
  block = _first_above(block_cdf[:, None, :], target[..., None], block_mass[:, None, :] > 0)
  columns = block[..., None] * size + jnp.arange(size)  # (B, num, S)
  inside = jnp.take_along_axis(weights[:, None, :], jnp.minimum(columns, n - 1), axis=2)
  inside = jnp.where(columns < n, inside, 0.0)
  cdf = _prefix_sums(inside)
  within = jax.random.uniform(item_key, (rows, num, 1)) * cdf[..., -1:]
  return (block * size + _first_above(cdf, within, inside > 0)).astype(jnp.int32)


def exclusion_mask(exclude: SortedSets, users: jax.Array, num_items: int) -> jax.Array:
  """(B, I) bool, True at each user's excluded items (scattered from the CSR sets)."""
  width = max(1, min(exclude.largest or 2 ** (exclude.search_steps - 1),
                     exclude.items.shape[0]))
  rows = users.shape[0]
  start, size = exclude.indptr[users], exclude.indptr[users + 1] - exclude.indptr[users]
  slots = jnp.arange(width)
  at = jnp.minimum(start[:, None] + slots, exclude.items.shape[0] - 1)
  valid = slots < size[:, None]
  if rows * num_items < 2 ** 31 - 1:
    # One flat scatter (dropping slots past a user's set) is ~3x faster on a CPU
    # than a two-index one.
    flat = jnp.where(valid, jnp.arange(rows)[:, None] * num_items + exclude.items[at],
                     rows * num_items)
    return (jnp.zeros((rows * num_items,), bool).at[flat.reshape(-1)]
            .set(True, mode="drop").reshape(rows, num_items))
  columns = jnp.where(valid, exclude.items[at], num_items)
  row_ids = jnp.broadcast_to(jnp.arange(rows)[:, None], columns.shape)
  return jnp.zeros((rows, num_items), bool).at[row_ids, columns].set(True, mode="drop")
