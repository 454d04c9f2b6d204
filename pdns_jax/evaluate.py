"""Full-rank top-K evaluation on device; Recall@K and NDCG@K (PAPER.md 6).

Every item is scored for every evaluated user; the user's training items (and,
for the test set, validation items) are masked out; Recall@K = |top-K ∩ T_u| /
|T_u|, NDCG@K = DCG@K / IDCG@K with binary gains and IDCG over min(|T_u|, K)
hits; both are averaged over users with a non-empty target set.

Host work (which users, which items to mask, which are targets) is done once
in `eval_set`; the device work is one jitted function over fixed-shape user
batches (the last batch padded), so nothing recompiles and nothing returns to
the host until the averages are done.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class EvalSet:
  """Fixed-shape batches for one evaluation target (valid or test).

  Attributes:
    users: int32 (batches, B) user ids; padding rows repeat user 0.
    real: float32 (batches, B) 1 for a real row, 0 for padding.
    mask_rows, mask_cols: int32 (batches, M) entries to exclude from ranking;
      padding points at row B (out of range, dropped).
    target_rows, target_cols: int32 (batches, T) the held-out items; same padding.
    num_targets: float32 (batches, B) |T_u|.
  """

  users: jax.Array
  real: jax.Array
  mask_rows: jax.Array
  mask_cols: jax.Array
  target_rows: jax.Array
  target_cols: jax.Array
  num_targets: jax.Array


def _batched_entries(pairs: np.ndarray, position: np.ndarray, batch_size: int,
                     num_batches: int):
  """Groups (user, item) pairs by the evaluation batch their user falls in."""
  pos = position[pairs[:, 0]]
  pairs, pos = pairs[pos >= 0], pos[pos >= 0]
  batch, row = pos // batch_size, pos % batch_size
  order = np.argsort(batch, kind="stable")
  batch, row, cols = batch[order], row[order], pairs[order, 1]
  counts = np.bincount(batch, minlength=num_batches)
  width = max(int(counts.max(initial=0)), 1)
  slot = np.arange(len(batch)) - (np.cumsum(counts) - counts)[batch]
  rows_out = np.full((num_batches, width), batch_size, np.int32)
  cols_out = np.zeros((num_batches, width), np.int32)
  rows_out[batch, slot] = row
  cols_out[batch, slot] = cols
  return rows_out, cols_out


def eval_set(*, targets: np.ndarray, excluded: list[np.ndarray], num_users: int,
             batch_size: int) -> EvalSet:
  """Prepares one evaluation on the host.

  Args:
    targets: int (n, 2) held-out (user, item) pairs; users without any are skipped.
    excluded: arrays of (user, item) pairs never to rank (train; train + valid).
    num_users: number of users.
    batch_size: users scored at once.
  """
  num_targets = np.bincount(targets[:, 0], minlength=num_users)
  users = np.flatnonzero(num_targets > 0)
  batch_size = max(1, min(batch_size, len(users)))
  num_batches = max(1, -(-len(users) // batch_size))
  padded = np.zeros(num_batches * batch_size, np.int64)
  padded[:len(users)] = users
  real = np.zeros(num_batches * batch_size, np.float32)
  real[:len(users)] = 1.0
  position = np.full(num_users, -1, np.int64)
  position[users] = np.arange(len(users))
  mask_rows, mask_cols = _batched_entries(
      np.concatenate([np.zeros((0, 2), np.int64)] +
                     [np.asarray(e, np.int64).reshape(-1, 2) for e in excluded]),
      position, batch_size, num_batches)
  target_rows, target_cols = _batched_entries(targets, position, batch_size, num_batches)
  shape = (num_batches, batch_size)
  return EvalSet(
      users=jnp.asarray(padded.reshape(shape), jnp.int32),
      real=jnp.asarray(real.reshape(shape)),
      mask_rows=jnp.asarray(mask_rows), mask_cols=jnp.asarray(mask_cols),
      target_rows=jnp.asarray(target_rows), target_cols=jnp.asarray(target_cols),
      num_targets=jnp.asarray(num_targets[padded].reshape(shape), jnp.float32))


def rank_metrics(*, hits: jax.Array, num_targets: jax.Array, k: int):
  """Recall@k and NDCG@k per user from the top-ranked hit matrix.

  Args:
    hits: (B, >= k) 1.0 where the item at that rank is a target.
    num_targets: (B,) |T_u| (> 0 for real users).
    k: cut-off.
  """
  discounts = 1.0 / jnp.log2(jnp.arange(2, k + 2, dtype=jnp.float32))
  top = hits[:, :k]
  recall = top.sum(axis=1) / jnp.maximum(num_targets, 1.0)
  ideal_hits = jnp.clip(num_targets, 1, k).astype(jnp.int32)
  idcg = jnp.cumsum(discounts)[ideal_hits - 1]
  ndcg = (top * discounts).sum(axis=1) / idcg
  return recall, ndcg


def evaluate(user_embeddings: jax.Array, item_embeddings: jax.Array, data: EvalSet,
             topk: tuple[int, ...]) -> dict[str, jax.Array]:
  """Mean Recall@K and NDCG@K over the users of `data` (jit-able, vmap-able).

  Returns:
    {"recall@K": scalar, "ndcg@K": scalar} for each K in topk.
  """
  max_k = max(topk)

  def one_batch(batch):
    users, real, mask_rows, mask_cols, target_rows, target_cols, num_targets = batch
    scores = user_embeddings[users] @ item_embeddings.T
    scores = scores.at[mask_rows, mask_cols].set(-jnp.inf, mode="drop")
    _, top_items = jax.lax.top_k(scores, max_k)
    is_target = jnp.zeros(scores.shape, jnp.float32).at[target_rows, target_cols].set(
        1.0, mode="drop")
    hits = jnp.take_along_axis(is_target, top_items, axis=1)
    sums = {}
    for k in topk:
      recall, ndcg = rank_metrics(hits=hits, num_targets=num_targets, k=k)
      sums[f"recall@{k}"] = jnp.sum(recall * real)
      sums[f"ndcg@{k}"] = jnp.sum(ndcg * real)
    return sums

  batches = (data.users, data.real, data.mask_rows, data.mask_cols,
             data.target_rows, data.target_cols, data.num_targets)
  sums = jax.lax.map(one_batch, batches)
  count = jnp.sum(data.real)
  return {name: jnp.sum(value) / count for name, value in sums.items()}
