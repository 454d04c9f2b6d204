"""AdaSIR(U) and AdaSIR(P) (Chen et al., WWW 2022): sampling-importance-resampling pools.

BASELINES.md 3, following the authors' samplers "two_pass_weight" (uniform
proposals, AdaSIR(U)) and "two_pass_weight_pop" (popularity proposals,
AdaSIR(P)), run with weighting on. Each user keeps a pool of P items and the
resampling probability w with which each entered it.

Per epoch (`refresh`), for every user: draw M proposals c from Q, weight them
by w = softmax over the M proposals of (s(u, c) - ln q(c)), resample P of them
with replacement from Categorical(w) (the new slots, each carrying its w) and
merge: the first refresh replaces the pool; later ones let each slot copy a
uniformly chosen slot of [old pool, new slots].

Per step, for each (u, i): draw K slots of u's pool uniformly with
replacement, items j_k with stored w_k, and weight them by
omega_k = softmax_k(s_uj_k - s_ui + ln w_k) (no gradient). The BPR loss of the
step then is sum_k omega_k * softplus(s_uj_k - s_ui).

Deviations from the released code, named in the registry's `about` text:
- Exact exclusion: uniform proposals are uniform over I \\ I_u
  (`pools.candidate_pool`); popularity proposals that are training positives
  (or revealed false negatives) get weight zero, and a user whose M
  popularity proposals are all excluded falls back to M exact uniform
  proposals for that epoch. The released code excludes nothing.
- Pool slots whose item became excluded since it entered (a revealed false
  negative in the simulation) are replaced by the new slot at that position.
- omega is the released rule, softmax(s_uj - s_ui + ln w); textbook
  self-normalised importance resampling would divide by w instead
  (softmax(s_uj - ln w)). s_ui is a constant shift within the softmax.

Memory: the state holds pool int32 (U, P) and pool_w float32 (U, P) per
replica (2 * U * P * 4 bytes; Gowalla, P = 50: about 12 MB). The refresh
works on chunks of users with at most `_REFRESH_BUDGET` proposal-embedding
floats (chunk * M * F) at a time, so its peak memory does not grow with U.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from pdns_jax.config import ConfigError
from pdns_jax.samplers.base import Negatives, Sampler
from pdns_jax.samplers.pools import (SortedSets, batch_pools, candidate_pool, contains,
                                     count_at_most)

# Proposal-embedding floats (users x M x F) one refresh chunk may gather: 64 MiB.
_REFRESH_BUDGET = 1 << 24


def popularity_table(counts: jax.Array) -> dict:
  """q(j) proportional to ln(1 + count_j), laid out for a two-level inverse CDF.

  Items are grouped in blocks of S = ceil(sqrt(I)); a draw picks a block by its
  mass, then an item inside it. One float32 CDF over all items would quantise
  the draw (a float32 uniform times a total of ~1e5 has steps of ~0.01, a few
  percent of a rare item's mass); two levels keep each step tiny.

  Args:
    counts: int (I,) training interactions per item.

  Returns:
    {"mass": (I,) ln(1 + count), "block_cdf": (B,), "item_cdf": (B * S,)
    cumulative mass within each block}.
  """
  num_items = counts.shape[0]
  size = max(1, math.isqrt(num_items - 1) + 1)
  num_blocks = -(-num_items // size)
  mass = jnp.log1p(counts.astype(jnp.float32))
  blocks = jnp.pad(mass, (0, num_blocks * size - num_items)).reshape(num_blocks, size)
  return {"mass": mass, "block_cdf": jnp.cumsum(blocks.sum(1)),
          "item_cdf": jnp.cumsum(blocks, axis=1).reshape(-1)}


def _below(total: jax.Array) -> jax.Array:
  """The largest float32 below `total`: targets stay under a CDF's last value, so the
  first value above them always belongs to an entry of positive mass."""
  return jnp.nextafter(total, jnp.zeros_like(total))


def popularity_proposals(key: jax.Array, *, table: dict,
                         num: int) -> tuple[jax.Array, jax.Array]:
  """Draws `num` items with q(j) proportional to ln(1 + count_j), by inverse CDF.

  Args:
    key: PRNG key.
    table: `popularity_table(counts)`.
    num: M.

  Returns:
    (items int32 (num,), ln q of each item (num,)).
  """
  block_cdf, item_cdf = table["block_cdf"], table["item_cdf"]
  num_blocks = block_cdf.shape[0]
  size = item_cdf.shape[0] // num_blocks
  block_key, item_key = jax.random.split(key)
  total = block_cdf[-1]
  target = jnp.minimum(jax.random.uniform(block_key, (num,)) * total, _below(total))
  block = jnp.minimum(jnp.searchsorted(block_cdf, target, side="right"), num_blocks - 1)
  block_mass = block_cdf[block] - jnp.where(block > 0, block_cdf[block - 1], 0.0)
  within = jnp.minimum(jax.random.uniform(item_key, (num,)) * block_mass, _below(block_mass))
  steps = math.ceil(math.log2(size + 1)) + 1
  find = lambda b, t: count_at_most(item_cdf, b * size, (b + 1) * size, t, steps)
  items = jnp.minimum(jax.vmap(find)(block, within), table["mass"].shape[0] - 1)
  return items.astype(jnp.int32), jnp.log(table["mass"][items]) - jnp.log(total)


def resampling_logits(*, scores: jax.Array, log_q: jax.Array,
                      excluded: jax.Array) -> jax.Array:
  """SIR step 2: logits s(u, c) - ln q(c) of w = softmax over the M proposals.

  Excluded proposals (training positives) get logit -inf, so weight zero.
  """
  return jnp.where(excluded, -jnp.inf, scores - log_q)


def resample(key: jax.Array, *, logits: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
  """SIR step 3: `size` draws with replacement from Categorical(softmax(logits)).

  By inverse CDF over the M weights: O(M + size log M) per user, where
  `jax.random.categorical` would draw size x M Gumbel variables (it made the
  refresh ~100x slower than a DNS epoch on CPU).

  Returns:
    (indices into the proposals (size,), the w of each draw (size,)).
  """
  w = jax.nn.softmax(logits)
  cdf = jnp.cumsum(w)
  total = cdf[-1]
  target = jnp.minimum(jax.random.uniform(key, (size,)) * total, _below(total))
  picks = jnp.minimum(jnp.searchsorted(cdf, target, side="right"), w.shape[0] - 1)
  return picks, w[picks]


def importance_weights(*, neg_scores: jax.Array, pos_score: jax.Array,
                       pool_w: jax.Array) -> jax.Array:
  """The released code's step weights: omega_k = softmax_k(s_uj_k - s_ui + ln w_k)."""
  return jax.nn.softmax(neg_scores - pos_score[..., None] + jnp.log(pool_w), axis=-1)


def merge_pools(key: jax.Array, *, old: jax.Array, old_w: jax.Array, new: jax.Array,
                new_w: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Each slot copies a uniformly chosen slot of [old pool, new slots], with its w."""
  size = old.shape[-1]
  pick = jax.random.randint(key, (size,), 0, 2 * size)
  return (jnp.concatenate([old, new])[pick], jnp.concatenate([old_w, new_w])[pick])


@dataclasses.dataclass(frozen=True)
class AdaSIR(Sampler):
  """AdaSIR with uniform (U) or popularity (P) proposals.

  Attributes:
    pool: P, pool slots per user.
    proposals: M >= P, proposals per user and epoch.
    samples: K, negatives per example drawn from the pool.
    popularity: proposals from q(j) proportional to ln(1 + count_j) (AdaSIR(P))
      instead of uniform over the user's non-positives (AdaSIR(U)).
  """

  pool: int = 50
  proposals: int = 200
  samples: int = 5
  popularity: bool = False

  has_refresh = True

  def init(self, key, data):
    # A placeholder until the first refresh (which runs before epoch 0 trains):
    # exact uniform items, each with w = 1 / P.
    users = jnp.arange(data.exclude.indptr.shape[0] - 1)
    pool = batch_pools(key, users, data.exclude, self.num_items, self.pool)
    return {"pool": pool, "pool_w": jnp.full(pool.shape, 1.0 / self.pool, jnp.float32),
            "filled": jnp.zeros((), jnp.bool_)}

  def _user_slots(self, key, user, user_embedding, item_embeddings, exclude: SortedSets,
                  table):
    """One user's P new slots (items, w) from M proposals (SIR steps 1-3)."""
    propose_key, fallback_key, pick_key = jax.random.split(key, 3)
    uniform = candidate_pool(fallback_key, user, exclude, self.num_items, self.proposals)
    num_free = self.num_items - (exclude.indptr[user + 1] - exclude.indptr[user])
    uniform_log_q = jnp.full((self.proposals,), -jnp.log(num_free.astype(jnp.float32)))
    if self.popularity:
      drawn, log_q = popularity_proposals(propose_key, table=table, num=self.proposals)
      excluded = jax.vmap(contains, (None, None, 0))(exclude, user, drawn)
      # Tiny data: every proposal may be a positive; then this user's proposals
      # are exact uniform ones, so no positive ever enters the pool.
      none_left = jnp.all(excluded)
      drawn = jnp.where(none_left, uniform, drawn)
      log_q = jnp.where(none_left, uniform_log_q, log_q)
      excluded = excluded & ~none_left
    else:
      drawn, log_q, excluded = uniform, uniform_log_q, jnp.zeros(self.proposals, jnp.bool_)
    logits = resampling_logits(scores=item_embeddings[drawn] @ user_embedding, log_q=log_q,
                               excluded=excluded)
    picks, w = resample(pick_key, logits=logits, size=self.pool)
    return drawn[picks], w

  def refresh(self, state, key, embeddings, data, epoch, hparams=None):
    del epoch, hparams  # the first refresh is known from the state (also after a resume)
    num_users = state["pool"].shape[0]
    user_e = jax.lax.stop_gradient(embeddings.user)
    item_e = jax.lax.stop_gradient(embeddings.item)
    # Popularity from the training pairs; a few O(N + I) ops per epoch.
    table = (popularity_table(jnp.bincount(data.pairs()[1], length=self.num_items))
             if self.popularity else None)
    draw_key, merge_key = jax.random.split(key)

    def one_user(user, old, old_w):
      # Keys by user id: the draws do not depend on the chunking.
      new, new_w = self._user_slots(jax.random.fold_in(draw_key, user), user, user_e[user],
                                    item_e, data.exclude, table)
      merged, merged_w = merge_pools(jax.random.fold_in(merge_key, user), old=old,
                                     old_w=old_w, new=new, new_w=new_w)
      merged = jnp.where(state["filled"], merged, new)
      merged_w = jnp.where(state["filled"], merged_w, new_w)
      # A slot whose item has become excluded since (a revealed false negative)
      # takes the new slot at its position, which is drawn under today's sets.
      stale = jax.vmap(contains, (None, None, 0))(data.exclude, user, merged)
      return jnp.where(stale, new, merged), jnp.where(stale, new_w, merged_w)

    chunk = max(1, min(num_users,
                       _REFRESH_BUDGET // (self.proposals * embeddings.item.shape[-1])))
    num_chunks = -(-num_users // chunk)
    # Padding users repeat real ones (same key, same result) and are dropped.
    users = jnp.arange(num_chunks * chunk) % num_users
    chunked = lambda x: x.reshape((num_chunks, chunk) + x.shape[1:])
    pool, pool_w = jax.lax.map(
        lambda xs: jax.vmap(one_user)(*xs),
        (chunked(users), chunked(state["pool"][users]), chunked(state["pool_w"][users])))
    return {"pool": pool.reshape(-1, self.pool)[:num_users],
            "pool_w": pool_w.reshape(-1, self.pool)[:num_users],
            "filled": jnp.ones((), jnp.bool_)}

  def negatives(self, state, key, batch, embeddings, data, hparams):
    del data, hparams
    slot_key, _ = jax.random.split(key)
    users = batch.users
    slots = jax.random.randint(slot_key, (users.shape[0], self.samples), 0, self.pool)
    items = jnp.take_along_axis(state["pool"][users], slots, axis=1)
    stored_w = jnp.take_along_axis(state["pool_w"][users], slots, axis=1)
    # The weights are a choice: no gradient through them.
    e_user = jax.lax.stop_gradient(embeddings.user[users])
    neg_scores = jnp.einsum("bf,bkf->bk", e_user,
                            jax.lax.stop_gradient(embeddings.item[items]))
    pos_scores = jnp.sum(e_user * jax.lax.stop_gradient(embeddings.item[batch.positives]), -1)
    omega = importance_weights(neg_scores=neg_scores, pos_score=pos_scores, pool_w=stored_w)
    return Negatives(items=items, embeddings=embeddings.item[items],
                     layer0=embeddings.item_layers[0][items],
                     weights=jax.lax.stop_gradient(omega)), state


_DEVIATIONS = ("step weights omega = softmax(s_uj - s_ui + ln w), the released rule (textbook "
               "SIR would use -ln w); exact exclusion of training positives (the released "
               "code excludes none)")
ABOUT_U = ("AdaSIR(U) (Chen et al. 2022, authors' two_pass_weight, weighting on): per epoch M "
           "uniform non-positive proposals resampled by softmax(s - ln q) into a P-slot pool, K "
           "slots per example. Deviations: " + _DEVIATIONS)
ABOUT_P = ("AdaSIR(P) (Chen et al. 2022, authors' two_pass_weight_pop, weighting on): per epoch "
           "M proposals with q ~ ln(1 + count) resampled by softmax(s - ln q) into a P-slot "
           "pool, K slots per example. Deviations: " + _DEVIATIONS + "; proposals that are "
           "positives get weight 0, and a user whose M proposals are all positives gets M "
           "exact uniform proposals that epoch")


def check(config) -> None:
  """Rejects impossible `config.adasir` values before any compute."""
  knobs = config.adasir
  for field, ok, why in (("pool", knobs.pool >= 1, "must be >= 1"),
                         ("proposals", knobs.proposals >= knobs.pool,
                          f"must be >= config.adasir.pool ({knobs.pool}): the pool is "
                          "resampled from the proposals"),
                         ("samples", knobs.samples >= 1, "must be >= 1")):
    if not ok:
      raise ConfigError(f"config.adasir.{field}: {why} (got {knobs[field]!r})")


def build(config, split, *, popularity: bool) -> AdaSIR:
  """The sampler for `config.adasir` and the data of `split` (a `data.Split`)."""
  knobs = config.adasir
  return AdaSIR(num_items=split.num_items, pool=int(knobs.pool),
                proposals=int(knobs.proposals), samples=int(knobs.samples),
                popularity=popularity)
