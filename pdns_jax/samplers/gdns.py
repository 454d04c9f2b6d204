"""GDNS (Zhu et al., WWW 2022; BASELINES.md 2): expectational gain. A reconstruction.

The public method text defines the hardness of a candidate as the expected
gap H_t(u, j) = mean_{i in I_u} sigma(s_uj - s_ui) at epoch t, and a gain
G_t = a * G_{t-1} + (1 - a) * |H_t - H_{t-1}| that is high for true negatives
(their H moves during training) and low for false negatives. Its group-wise
optimiser is not public; this module builds the reading of BASELINES.md 2:

- each user tracks C uniform non-positives, fixed for the run (the gain needs
  the same items epoch after epoch);
- per epoch (`refresh`): H_t from the current model, estimated with up to P of
  the user's training positives drawn without replacement that epoch; then
  the gain update (at the first refresh G = 0 and H is only stored);
- per step: H pool positions drawn uniformly from the user's tracked array,
  pick argmax(sigma(s_uj - s_ui) + gamma * rank(G) / (H - 1)), BPR on it.
  rank(G) is the number of pool entries with a strictly smaller gain, so
  equal gains (all of them before the second refresh) get the same bonus.

Memory per replica: cand U x C int32 (a tracked item revealed as a false
negative since is stored as -1 - j: `srns.mark_excluded`), H_prev and G
U x C float32 (Gowalla with C = 1000: 0.36 GB); the refresh holds one more
U x C float32 array.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pdns_jax.config import ConfigError
from pdns_jax.samplers.base import Sampler, knob, single
from pdns_jax.samplers.pools import batch_pools
from pdns_jax.samplers.srns import (candidate_scores, mark_excluded, num_candidates,
                                    stored_items)


def gain_update(*, hardness: jax.Array, previous: jax.Array, gain: jax.Array, decay,
                first) -> tuple[jax.Array, jax.Array]:
  """G_t = a * G_{t-1} + (1 - a) * |H_t - H_{t-1}|; at the first epoch G = 0.

  Returns:
    (new gain, new H_prev = hardness).
  """
  updated = decay * gain + (1.0 - decay) * jnp.abs(hardness - previous)
  return jnp.where(first, jnp.zeros_like(gain), updated), hardness


def positive_table(key: jax.Array, users: jax.Array, items: jax.Array, num_users: int,
                   size: int) -> tuple[jax.Array, jax.Array]:
  """Up to `size` training positives per user, a fresh uniform subset per key.

  A random permutation of the pairs, stably sorted by user, puts each user's
  positives in random order; the first min(|I_u|, size) are a subset drawn
  uniformly without replacement.

  Returns:
    (items (U, size) int32, valid (U, size) bool).
  """
  order = jax.random.permutation(key, users.shape[0])
  order = order[jnp.argsort(users[order], stable=True)]
  degree = jnp.zeros((num_users,), jnp.int32).at[users].add(1)
  start = jnp.cumsum(degree) - degree
  offset = jnp.arange(size)
  valid = offset[None, :] < degree[:, None]
  at = jnp.minimum(start[:, None] + offset[None, :], users.shape[0] - 1)
  return items[order][at], valid


def expected_hardness(*, user: jax.Array, item: jax.Array, cand: jax.Array,
                      positives: jax.Array, valid: jax.Array) -> jax.Array:
  """H(u, j) = mean over the valid positives i of sigma(s_uj - s_ui): (U, C).

  One positive at a time, so memory stays U x C (not U x C x P).
  """
  cand_scores = candidate_scores(user, item, cand)
  pos_scores = jnp.einsum("uf,upf->up", user, item[positives])
  def add(total, p):
    term = jax.nn.sigmoid(cand_scores - pos_scores[:, p, None])
    return total + jnp.where(valid[:, p, None], term, 0.0), None
  total, _ = jax.lax.scan(add, jnp.zeros_like(cand_scores), jnp.arange(positives.shape[1]))
  return total / jnp.maximum(valid.sum(1), 1)[:, None]


def pool_rank(gain: jax.Array) -> jax.Array:
  """Rank-normalised gain over the last axis: #{strictly smaller} / (H - 1), in [0, 1]."""
  size = gain.shape[-1]
  smaller = jnp.sum(gain[..., None, :] < gain[..., :, None], axis=-1)
  return smaller / max(size - 1, 1)


def gdns_pick(*, hardness: jax.Array, gain: jax.Array, gamma, allowed: jax.Array):
  """argmax over the pool of sigma(s_uj - s_ui) + gamma * rank-normalised G(u, j)."""
  value = jnp.where(allowed, hardness + gamma * pool_rank(gain), -jnp.inf)
  return jnp.argmax(value, axis=-1)


@dataclasses.dataclass(frozen=True)
class GDNS(Sampler):
  """GDNS reconstruction: hardness plus rank-normalised expectational gain.

  Attributes:
    num_candidates: C, tracked candidates per user (static from the split).
    pool_size: H, pool positions drawn per example.
    positives: P, positives per user estimating H_t.
    decay: a, the gain's moving-average factor.
    gamma: weight of the rank-normalised gain.
  """

  num_candidates: int = 1
  pool_size: int = 32
  positives: int = 16
  decay: float = 0.9
  gamma: float = 1.0

  has_refresh = True

  def init(self, key, data):
    num_users = data.exclude.indptr.shape[0] - 1
    cand = batch_pools(key, jnp.arange(num_users), data.exclude, self.num_items,
                       self.num_candidates)
    zeros = jnp.zeros((num_users, self.num_candidates), jnp.float32)
    return {"cand": cand.astype(jnp.int32), "h_prev": zeros, "gain": zeros,
            "refreshed": jnp.zeros((), jnp.int32)}

  def refresh(self, state, key, embeddings, data, epoch, hparams=None):
    del epoch
    num_users = state["cand"].shape[0]
    # Tracked items revealed as false negatives since are marked, never picked.
    cand = mark_excluded(state["cand"], data)
    positives, valid = positive_table(key, *data.pairs(), num_users, self.positives)
    hardness = expected_hardness(user=jax.lax.stop_gradient(embeddings.user),
                                 item=jax.lax.stop_gradient(embeddings.item),
                                 cand=stored_items(cand), positives=positives, valid=valid)
    gain, h_prev = gain_update(hardness=hardness, previous=state["h_prev"], gain=state["gain"],
                               decay=knob(hparams, "gdns.decay", self.decay),
                               first=state["refreshed"] == 0)
    return dict(state, cand=cand, h_prev=h_prev, gain=gain,
                refreshed=jnp.ones((), jnp.int32))

  def negatives(self, state, key, batch, embeddings, data, hparams):
    pool_key, fallback_key = jax.random.split(key)
    users = batch.users
    user = jax.lax.stop_gradient(embeddings.user[users])
    item = jax.lax.stop_gradient(embeddings.item)
    slots = jax.random.randint(pool_key, (users.shape[0], self.pool_size), 0,
                               state["cand"].shape[1])
    stored = state["cand"][users[:, None], slots]
    # Negative entries are items excluded since (`srns.mark_excluded`).
    pool, allowed = stored_items(stored), stored >= 0
    scores = jnp.einsum("bf,bhf->bh", user, item[pool])
    pos_scores = jnp.sum(user * item[batch.positives], -1)
    pick = gdns_pick(hardness=jax.nn.sigmoid(scores - pos_scores[:, None]),
                     gain=state["gain"][users[:, None], slots],
                     gamma=knob(hparams, "gdns.gamma", self.gamma), allowed=allowed)
    negative = jnp.take_along_axis(pool, pick[:, None], axis=1)[:, 0]
    # The tracked items were drawn at the start; an item excluded since (a
    # revealed false negative) is never returned: a uniform draw replaces a pool
    # that holds nothing else.
    uniform = batch_pools(fallback_key, users, data.exclude, self.num_items, 1)[:, 0]
    negative = jnp.where(allowed.any(axis=1), negative, uniform)
    return single(negative, embeddings.item[negative],
                  embeddings.item_layers[0][negative]), state


def check(config) -> None:
  """Rejects impossible `config.gdns` values, naming the field."""
  c = config.gdns
  def need(ok, field, why):
    if not ok:
      raise ConfigError(f"config.gdns.{field}: {why} (got {c[field]!r})")
  need(0 <= c.decay < 1, "decay", "a must lie in [0, 1)")
  need(c.positives >= 1, "positives", "P must be >= 1")
  need(c.num_candidates >= 1, "num_candidates", "C must be >= 1")
  need(c.gamma >= 0, "gamma", "must be >= 0")


def build(config, split) -> GDNS:
  """GDNS for `split`: C = min(config.gdns.num_candidates, I - max |I_u|), H = pool_size."""
  c = config.gdns
  return GDNS(num_items=split.num_items,
              num_candidates=num_candidates(c.num_candidates, split.num_items, split.train),
              pool_size=int(config.pool_size), positives=int(c.positives),
              decay=float(c.decay), gamma=float(c.gamma))


ABOUT = ("GDNS, a reconstruction (no public code; group-wise optimiser left out): C fixed "
         "tracked candidates, H_t from up to P sampled positives per epoch, gain EMA of "
         "|H_t - H_prev|, pick argmax sigma(s_uj - s_ui) + gamma * rank(G) / (H - 1) over H "
         "pool positions (rank = # strictly smaller gains); exact exclusion of positives")
