"""Full-rank top-K evaluation on device; Recall@K and NDCG@K (PAPER.md 6).

Every item is scored for every evaluated user; the user's training items (and,
for the test set, validation items) are masked out; Recall@K = |top-K ∩ T_u| /
|T_u|, NDCG@K = DCG@K / IDCG@K with binary gains and IDCG over min(|T_u|, K)
hits; both are averaged over users with a non-empty target set.

Host work (which users, which items to mask, which are targets) is done once
in `eval_set`; the device work is one jitted function over fixed-shape user
batches (the last batch padded), so nothing recompiles and nothing returns to
the host until the averages are done.

Items are scored in fixed-size chunks with a running top-K (`item_chunk`), so
memory is O(batch x (chunk + K)), never O(batch x items): a million-item
catalogue never materialises a batch x 1M score matrix. Ties rank the lower
item id first in every chunk and in every merge, so the result is the same
for every chunk size, and the same as one top-K over the whole row.
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


def _chunk_top(scores: jax.Array, first_item, mask_rows: jax.Array,
               mask_cols: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """Top-k (scores, item ids) of one (B, C) chunk of items starting at `first_item`.

  Excluded entries whose item falls in the chunk are set to -inf; the others
  point past the chunk and are dropped.
  """
  width = scores.shape[1]
  local = mask_cols - first_item
  local = jnp.where((local >= 0) & (local < width), local, width)
  scores = scores.at[mask_rows, local].set(-jnp.inf, mode="drop")
  values, slots = jax.lax.top_k(scores, k)
  return values, slots + first_item


def _item_chunks(item_embeddings: jax.Array, k: int, item_chunk: int) -> jax.Array:
  """The item table as (chunks, C, F), padded with zero rows to a whole number of chunks.

  C (at least k) splits the items as evenly as the number of chunks that
  `item_chunk` needs allows, so the padding, all in the last chunk, is under
  one row per chunk. One chunk (the table as it is) where the items fit in one.
  """
  num_items = item_embeddings.shape[0]
  chunk = max(int(item_chunk), k) if item_chunk else num_items
  num_chunks = -(-num_items // chunk)
  if num_chunks == 1:
    return item_embeddings[None]
  chunk = max(-(-num_items // num_chunks), k)  # balanced: ceil(items / chunks)
  num_chunks = -(-num_items // chunk)  # raised to k, fewer may do: padding stays last
  return jnp.pad(item_embeddings, ((0, num_chunks * chunk - num_items), (0, 0))).reshape(
      num_chunks, chunk, -1)


def _scores(users: jax.Array, items: jax.Array) -> jax.Array:
  """users @ items.T in full float32: a GPU's default (TF32 inputs) could reorder
  near-ties and move the metrics away from the CPU's."""
  return jnp.matmul(users, items.T, precision=jax.lax.Precision.HIGHEST)


def _top_from_chunks(users: jax.Array, chunks: jax.Array, num_items: int,
                     mask_rows: jax.Array, mask_cols: jax.Array, k: int) -> jax.Array:
  """(B, k) item ids of the best-scored non-excluded items, best first.

  A scan over the chunks of `_item_chunks` merging each chunk's top-k into
  the running one. Merges put the running entries (lower item ids) first in
  the concatenation and `lax.top_k` keeps the lower position on a tie, so ties
  always rank the lower item id first, exactly as one top-k over the whole row.
  """
  num_chunks, chunk = chunks.shape[:2]
  if num_chunks == 1:
    return _chunk_top(_scores(users, chunks[0]), 0, mask_rows, mask_cols, k)[1]
  # Padding rows score -inf and have the highest ids, so they rank after every
  # real item (there are >= k of those: each chunk holds >= k items).
  is_padding = jnp.arange(chunk) >= num_items - (num_chunks - 1) * chunk

  def scores_of(index):
    scores = _scores(users, chunks[index])
    return jnp.where((index == num_chunks - 1) & is_padding, -jnp.inf, scores)

  def merge(running, index):
    values, items = _chunk_top(scores_of(index), index * chunk, mask_rows, mask_cols, k)
    values = jnp.concatenate([running[0], values], axis=1)
    items = jnp.concatenate([running[1], items], axis=1)
    values, slots = jax.lax.top_k(values, k)
    return (values, jnp.take_along_axis(items, slots, axis=1)), None

  first = _chunk_top(scores_of(0), 0, mask_rows, mask_cols, k)
  (_, items), _ = jax.lax.scan(merge, first, jnp.arange(1, num_chunks))
  return items


def _top_items(users: jax.Array, item_embeddings: jax.Array, mask_rows: jax.Array,
               mask_cols: jax.Array, k: int, item_chunk: int) -> jax.Array:
  """(B, k) best non-excluded item ids of one user batch, items in chunks."""
  return _top_from_chunks(users, _item_chunks(item_embeddings, k, item_chunk),
                          item_embeddings.shape[0], mask_rows, mask_cols, k)


def _hits(top_items: jax.Array, target_rows: jax.Array,
          target_cols: jax.Array) -> jax.Array:
  """(B, k) 1.0 where the ranked item is one of its user's targets.

  Each target entry (row, item) looks for its item among its row's top-k
  (O(targets x k)); a user's targets are distinct, so no slot is hit twice.
  Padding entries (row B) find nothing and are dropped.
  """
  batch, k = top_items.shape
  ranked = top_items.at[target_rows].get(mode="fill", fill_value=-1)
  found = (ranked == target_cols[:, None]).astype(jnp.float32)
  return jnp.zeros((batch, k), jnp.float32).at[
      target_rows[:, None], jnp.arange(k)[None, :]].add(found, mode="drop")


def evaluate(user_embeddings: jax.Array, item_embeddings: jax.Array, data: EvalSet,
             topk: tuple[int, ...], *, item_chunk: int = 0) -> dict[str, jax.Array]:
  """Mean Recall@K and NDCG@K over the users of `data` (jit-able, vmap-able).

  Args:
    user_embeddings: (U, F) final user embeddings.
    item_embeddings: (I, F) final item embeddings.
    data: the users, exclusions and targets of one evaluation (`eval_set`).
    topk: the cut-offs K.
    item_chunk: items scored at once (static; raised to max(topk) if below);
      0 = all items in one chunk. Memory is O(batch x (chunk + K)).

  Returns:
    {"recall@K": scalar, "ndcg@K": scalar} for each K in topk.
  """
  max_k = max(topk)
  # Chunked once, outside the loop over user batches (XLA does not hoist it).
  chunks = _item_chunks(item_embeddings, max_k, item_chunk)

  def one_batch(batch):
    users, real, mask_rows, mask_cols, target_rows, target_cols, num_targets = batch
    top_items = _top_from_chunks(user_embeddings[users], chunks, item_embeddings.shape[0],
                                 mask_rows, mask_cols, max_k)
    hits = _hits(top_items, target_rows, target_cols)
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
