"""SRNS (Ding et al., NeurIPS 2020; BASELINES.md 1): hard and unstable negatives.

False negatives score high but vary little across epochs; hard true negatives
score high and vary. Each user keeps a memory of S1 slots into its candidate
array; a step picks the memory item with the largest
hardness + alpha * min(1, t / T_warm) * variability (the
authors' `SRNS_real` reading), trains BPR on it, and refreshes the user's
memory from the S1 items plus S2 fresh candidate positions, keeping S1 of them
sampled without replacement with probabilities softmax(s_uj / tau).

Fixed-shape scheme for the candidates and their history (a named deviation):
the authors keep several candidate arrays at different ages in a ring so that
the array in use always has W epochs of history. Here one array cand[U, C] is
split into W interleaved column blocks (column c is in block c mod W); the
refresh at the start of epoch t > 0 redraws block t mod W, so every candidate
lives W epochs, as the authors' do, but a young one has fewer than W
snapshots (its variability is the std over the snapshots it has, 0 with one).

History values are sigma(s_uj - mean_{i in I_u} s_ui), one snapshot per epoch
(at the start of each epoch, i.e. from the model at the end of the previous
one); the per-step hardness uses the example's own positive i.

Memory per replica: U (4 C + b W C + 4 S1) + 4 C bytes, b = 4 (float32
history) or 2 (`config.srns.history_dtype="bfloat16"`): cand U x C int32
(items revealed as false negatives since are stored as -1 - j, see
`mark_excluded`), history W x U x C, mem U x S1 int32. S2 only sizes a
step's B x (S1 + S2) arrays and a B x C int32 table to find repeats. Gowalla
(U = 29,858) with C = 3000, W = 5, S1 = 8: 0.36 GB cand + 1.79 GB float32
history (0.90 GB bfloat16).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pdns_jax.config import ConfigError
from pdns_jax.samplers.base import Sampler, knob, single
from pdns_jax.samplers.pools import batch_pools, contains

HISTORY_DTYPES = ("float32", "bfloat16")
# Elements of the (users, candidates, features) gather scored at once.
_SCORE_CHUNK_ELEMENTS = 2 ** 25


def num_candidates(requested: int, num_items: int, train: np.ndarray) -> int:
  """C = min(requested, I - max |I_u|) (at least 1), static from the host split."""
  train = np.asarray(train)
  largest = int(np.bincount(train[:, 0]).max()) if len(train) else 0
  return max(1, min(int(requested), num_items - largest))


def candidate_scores(user: jax.Array, item: jax.Array, cand: jax.Array) -> jax.Array:
  """s(u, cand[u, c]) for every user and candidate, in user chunks: (U, C).

  Chunking keeps the gathered (chunk, C, F) block bounded instead of U x C x F.
  """
  num_cand, dim = cand.shape[1], user.shape[1]
  chunk = max(1, min(user.shape[0], _SCORE_CHUNK_ELEMENTS // max(1, num_cand * dim)))
  score = lambda row: item[row[1]] @ row[0]
  return jax.lax.map(score, (user, cand), batch_size=chunk)


def gumbel_top_k(key: jax.Array, logits: jax.Array, k: int) -> jax.Array:
  """k distinct indices drawn without replacement with probabilities softmax(logits).

  Gumbel top-k (Kool et al., 2019): the indices of the k largest
  logits + Gumbel noise, in the order drawn (the first is softmax-distributed).
  """
  noisy = logits + jax.random.gumbel(key, logits.shape, logits.dtype)
  return jax.lax.top_k(noisy, k)[1]


def masked_std(*, values: jax.Array, valid: jax.Array, axis: int = 0) -> jax.Array:
  """Population std of `values` over the `valid` entries of `axis` (0 if < 2)."""
  values = values.astype(jnp.float32)
  count = jnp.maximum(valid.sum(axis), 1)
  mean = jnp.where(valid, values, 0.0).sum(axis) / count
  var = jnp.where(valid, (values - jnp.expand_dims(mean, axis)) ** 2, 0.0).sum(axis) / count
  return jnp.sqrt(var)


def srns_pick(*, hardness: jax.Array, variability: jax.Array, weight, allowed: jax.Array):
  """SRNS pick: argmax over the memory of hardness + weight * variability.

  Args:
    hardness: (..., S1) sigma(s_uj - s_ui).
    variability: (..., S1) std over the stored epochs.
    weight: alpha * min(1, t / T_warm).
    allowed: (..., S1) False for items the user may not get (never picked).
  """
  value = jnp.where(allowed, hardness + weight * variability, -jnp.inf)
  return jnp.argmax(value, axis=-1)


def first_occurrence(positions: jax.Array) -> jax.Array:
  """(B, n) True where a position does not repeat an earlier one of its row."""
  n = positions.shape[-1]
  earlier = jnp.tril(jnp.ones((n, n), bool), -1)  # [a, a'] = a' < a
  same = positions[..., :, None] == positions[..., None, :]
  return ~jnp.any(same & earlier, axis=-1)


def first_occurrence_scatter(positions: jax.Array, num_positions: int) -> jax.Array:
  """`first_occurrence` for positions in [0, num_positions), by one scatter-min.

  Each row's positions index a row of a (B, num_positions) table; the smallest
  column that writes a cell owns it. O(B x (n + num_positions)) instead of
  the B x n x n comparisons (n = S1 + S2 = 72 by default).
  """
  rows, n = positions.shape
  flat = (jnp.arange(rows)[:, None] * num_positions + positions).reshape(-1)
  column = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (rows, n)).reshape(-1)
  owner = jnp.full((rows * num_positions,), n, jnp.int32).at[flat].min(column)
  return owner[flat].reshape(rows, n) == jnp.arange(n)


def memory_update(key: jax.Array, *, positions: jax.Array, scores: jax.Array,
                  allowed: jax.Array, tau, size: int,
                  num_positions: int | None = None) -> jax.Array:
  """SRNS memory update: `size` distinct positions drawn by softmax(score / tau).

  Sampling without replacement over the distinct allowed positions of each
  row (a repeated position counts once; an excluded item is never kept).

  Args:
    key: PRNG key.
    positions: (B, S1 + S2) candidate positions: the memory, then fresh ones.
    scores: (B, S1 + S2) their scores s_uj now.
    allowed: (B, S1 + S2) False for items the user may not get.
    tau: temperature.
    size: S1.
    num_positions: C, if given (positions lie in [0, C)): find repeats with
      `first_occurrence_scatter` (same result, cheaper for B x C < 2^31).

  Returns:
    int32 (B, size) the new memory.
  """
  if num_positions is not None and positions.shape[0] * num_positions < 2 ** 31:
    first = first_occurrence_scatter(positions, num_positions)
  else:
    first = first_occurrence(positions)
  keep = first & allowed
  logits = jnp.where(keep, scores / tau, -jnp.inf)
  chosen = gumbel_top_k(key, logits, size)
  return jnp.take_along_axis(positions, chosen, axis=-1).astype(jnp.int32)


def stored_items(cand: jax.Array) -> jax.Array:
  """Item ids of stored candidates; an entry -1 - j is item j, marked excluded."""
  return jnp.where(cand < 0, -1 - cand, cand)


def mark_excluded(cand: jax.Array, data) -> jax.Array:
  """cand (U, C) with the items each user may no longer get stored as -1 - j.

  Candidates are drawn outside the excluded sets, so only when those have grown
  past the training pairs (revealed false negatives) are the U x C entries
  searched, once per refresh; a step then reads the sign instead of searching.
  """
  def check(cand):
    items = stored_items(cand)
    excluded = jax.vmap(jax.vmap(contains, (None, None, 0)), (None, 0, 0))(
        data.exclude, jnp.arange(cand.shape[0]), items)
    return jnp.where(excluded, -1 - items, items)
  grown = data.exclude.indptr[-1] > data.pairs()[0].shape[0]
  return jax.lax.cond(grown, check, lambda c: c, cand)


def last_row_per_user(users: jax.Array, mask: jax.Array, num_users: int) -> jax.Array:
  """Per batch row, the row to write its user's memory into, or num_users (dropped).

  A user may appear several times in a batch; all its rows read the same old
  memory and only the last unmasked row's update is kept (scatter-max on the
  row index is order-independent, so this is deterministic on every backend).
  """
  rows = jnp.arange(users.shape[0])
  last = jnp.full((num_users,), -1, jnp.int32).at[users].max(
      jnp.where(mask > 0, rows, -1).astype(jnp.int32))
  return jnp.where(last[users] == rows, users, num_users)


@dataclasses.dataclass(frozen=True)
class SRNS(Sampler):
  """SRNS with memories, a W-epoch score history and variance-aware picks.

  Attributes:
    num_candidates: C, candidates tracked per user (static from the split).
    memory: S1, memory slots per user.
    fresh: S2, fresh candidate positions scored per step for the memory update.
    alpha: weight of the variability.
    warmup_epochs: T_warm; the weight ramps as min(1, t / T_warm).
    tau: temperature of the memory update's softmax.
    history: W, epochs of history (and the candidates' lifetime).
    history_dtype: "float32" | "bfloat16".
  """

  num_candidates: int = 1
  memory: int = 8
  fresh: int = 64
  alpha: float = 5.0
  warmup_epochs: int = 50
  tau: float = 10.0
  history: int = 5
  history_dtype: str = "float32"

  has_refresh = True

  def init(self, key, data):
    num_users = data.exclude.indptr.shape[0] - 1
    cand_key, mem_key = jax.random.split(key)
    cand = batch_pools(cand_key, jnp.arange(num_users), data.exclude, self.num_items,
                       self.num_candidates)
    if self.num_candidates >= self.memory:  # distinct slots from the start
      noise = jax.random.uniform(mem_key, (num_users, self.num_candidates))
      mem = jax.lax.top_k(noise, self.memory)[1].astype(jnp.int32)
    else:
      mem = jax.random.randint(mem_key, (num_users, self.memory), 0, self.num_candidates)
    return {"cand": cand.astype(jnp.int32),
            "history": jnp.zeros((self.history, num_users, self.num_candidates),
                                 jnp.dtype(self.history_dtype)),
            "filled": jnp.zeros((self.num_candidates,), jnp.int32),
            "mem": mem,
            "epoch": jnp.zeros((), jnp.int32)}

  def refresh(self, state, key, embeddings, data, epoch, hparams=None):
    """Redraws candidate block t mod W (t > 0), then stores this epoch's snapshot."""
    del hparams
    num_users, width = state["cand"].shape
    epoch = jnp.asarray(epoch, jnp.int32)
    block = epoch % self.history
    per_block = -(-width // self.history)
    columns = block + self.history * jnp.arange(per_block)
    columns = jnp.where((epoch > 0) & (columns < width), columns, width)  # width: dropped
    fresh = batch_pools(key, jnp.arange(num_users), data.exclude, self.num_items, per_block)
    cand = state["cand"].at[:, columns].set(fresh.astype(jnp.int32), mode="drop")
    cand = mark_excluded(cand, data)
    filled = state["filled"].at[columns].set(0, mode="drop")

    user = jax.lax.stop_gradient(embeddings.user)
    item = jax.lax.stop_gradient(embeddings.item)
    pair_users, pair_items = data.pairs()
    pair_scores = jnp.sum(user[pair_users] * item[pair_items], -1)
    degree = jnp.zeros((num_users,), jnp.float32).at[pair_users].add(1.0)
    mean_positive = (jnp.zeros((num_users,), pair_scores.dtype).at[pair_users]
                     .add(pair_scores) / jnp.maximum(degree, 1.0))
    snapshot = jax.nn.sigmoid(candidate_scores(user, item, stored_items(cand))
                              - mean_positive[:, None])
    history = state["history"].at[block].set(snapshot.astype(state["history"].dtype))
    return {"cand": cand, "history": history,
            "filled": jnp.minimum(filled + 1, self.history),
            "mem": state["mem"], "epoch": epoch}

  def variability(self, state, users: jax.Array, positions: jax.Array) -> jax.Array:
    """Std over the stored snapshots of each (user, candidate position): (B, S)."""
    stored = state["history"][:, users[:, None], positions]  # (W, B, S)
    age = (state["epoch"] - jnp.arange(self.history)) % self.history  # epochs since written
    valid = age[:, None, None] < state["filled"][positions][None]
    return masked_std(values=stored, valid=valid, axis=0)

  def negatives(self, state, key, batch, embeddings, data, hparams):
    fresh_key, gumbel_key, fallback_key = jax.random.split(key, 3)
    users = batch.users
    width = state["cand"].shape[1]
    user = jax.lax.stop_gradient(embeddings.user[users])
    item = jax.lax.stop_gradient(embeddings.item)
    pos_scores = jnp.sum(user * item[batch.positives], -1)

    slots = state["mem"][users]  # (B, S1)
    # Negative entries: items excluded since they were drawn (`mark_excluded`).
    stored = state["cand"][users[:, None], slots]
    mem_items, allowed = stored_items(stored), stored >= 0
    mem_scores = jnp.einsum("bf,bsf->bs", user, item[mem_items])
    if self.warmup_epochs > 0:
      ramp = jnp.minimum(1.0, state["epoch"].astype(jnp.float32) / self.warmup_epochs)
    else:
      ramp = 1.0
    pick = srns_pick(hardness=jax.nn.sigmoid(mem_scores - pos_scores[:, None]),
                     variability=self.variability(state, users, slots),
                     weight=knob(hparams, "srns.alpha", self.alpha) * ramp, allowed=allowed)
    negative = jnp.take_along_axis(mem_items, pick[:, None], axis=1)[:, 0]
    # Items excluded after the candidates were drawn (revealed false negatives)
    # are never returned; a user whose whole memory is excluded gets a uniform one.
    uniform = batch_pools(fallback_key, users, data.exclude, self.num_items, 1)[:, 0]
    negative = jnp.where(allowed.any(axis=1), negative, uniform)

    fresh = jax.random.randint(fresh_key, (users.shape[0], self.fresh), 0, width)
    fresh_stored = state["cand"][users[:, None], fresh]
    fresh_items = stored_items(fresh_stored)
    fresh_scores = jnp.einsum("bf,bsf->bs", user, item[fresh_items])
    new_slots = memory_update(
        gumbel_key, positions=jnp.concatenate([slots, fresh], axis=1),
        scores=jnp.concatenate([mem_scores, fresh_scores], axis=1),
        allowed=jnp.concatenate([allowed, fresh_stored >= 0], axis=1),
        tau=knob(hparams, "srns.tau", self.tau), size=self.memory, num_positions=width)
    rows = last_row_per_user(users, batch.mask, state["mem"].shape[0])
    mem = state["mem"].at[rows].set(new_slots, mode="drop")

    out = single(negative, embeddings.item[negative], embeddings.item_layers[0][negative])
    return out, dict(state, mem=mem)


def check(config) -> None:
  """Rejects impossible `config.srns` values, naming the field."""
  c = config.srns
  def need(ok, field, why):
    if not ok:
      raise ConfigError(f"config.srns.{field}: {why} (got {c[field]!r})")
  need(c.memory >= 1, "memory", "S1 must be >= 1")
  need(c.fresh >= 1, "fresh", "S2 must be >= 1")
  need(c.tau > 0, "tau", "must be > 0")
  need(c.alpha >= 0, "alpha", "must be >= 0")
  need(c.warmup_epochs >= 0, "warmup_epochs", "must be >= 0")
  need(c.history >= 2, "history", "W must be >= 2 (a std needs two epochs)")
  need(c.num_candidates >= c.memory, "num_candidates", "must be >= config.srns.memory")
  need(c.history_dtype in HISTORY_DTYPES, "history_dtype", f"must be one of {HISTORY_DTYPES}")


def build(config, split) -> SRNS:
  """SRNS for `split`: C = min(config.srns.num_candidates, I - max |I_u|)."""
  c = config.srns
  return SRNS(num_items=split.num_items,
              num_candidates=num_candidates(c.num_candidates, split.num_items, split.train),
              memory=int(c.memory), fresh=int(c.fresh), alpha=float(c.alpha),
              warmup_epochs=int(c.warmup_epochs), tau=float(c.tau), history=int(c.history),
              history_dtype=str(c.history_dtype))


ABOUT = ("SRNS (SRNS_real reading): memory S1 + S2 fresh, argmax hardness + alpha * ramp * "
         "std over W epochs; deviations: candidates redrawn as W interleaved column blocks "
         "(one per epoch, young ones have < W snapshots), history of sigma(s_uj - mean "
         "positive score), last row of a repeated user wins the memory write, exact "
         "exclusion of positives")
