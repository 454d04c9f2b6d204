"""MixGCF (Huang et al., KDD'21; PAPER.md 2): positive mixing and hop mixing.

Each layer's H candidates are mixed with that layer's positive (alpha per
layer from U(0, 1)); per layer the mixed candidate that scores highest with the
user's embedding at that layer is kept; the layers are then pooled by their
mean, as LightGCN pools. With MF there is one layer, so it is DNS on a
randomly mixed pool.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pdns_jax.samplers.base import Negatives, Sampler
from pdns_jax.samplers.pools import batch_pools
from pdns_jax.samplers.dns import positive_mix


def mixgcf_negative(*, user_layers: jax.Array, positive_layers: jax.Array,
                    candidate_layers: jax.Array, alpha: jax.Array):
  """MixGCF for one example.

  Args:
    user_layers: (hops, F).
    positive_layers: (hops, F).
    candidate_layers: (hops, H, F).
    alpha: (hops,) mixing coefficients.

  Returns:
    (pooled negative (F,), its layer-0 embedding (F,), chosen index per layer (hops,)).
  """
  mixed = positive_mix(positive=positive_layers[:, None, :],
                       negative=candidate_layers, alpha=alpha[:, None, None])
  scores = jnp.einsum("lhf,lf->lh", jax.lax.stop_gradient(mixed),
                      jax.lax.stop_gradient(user_layers))
  chosen = jnp.argmax(scores, axis=1)
  picked = jnp.take_along_axis(mixed, chosen[:, None, None], axis=1)[:, 0]
  return picked.mean(axis=0), picked[0], chosen


@dataclasses.dataclass(frozen=True)
class MixGCF(Sampler):
  """Attributes: pool_size: H candidates per example."""

  pool_size: int = 32

  def negatives(self, state, key, batch, embeddings, data, hparams):
    del hparams
    pool_key, mix_key = jax.random.split(key)
    users, positives = batch.users, batch.positives
    candidates = batch_pools(pool_key, users, data.exclude, self.num_items,
                                   self.pool_size)
    hops = embeddings.item_layers.shape[0]
    alpha = jax.random.uniform(mix_key, (users.shape[0], hops))
    layer_first = lambda x: x.swapaxes(0, 1)
    # The choice reads the pool without gradient, and a mixed candidate's score
    # is linear in it: alpha <e_i, e_u> + (1 - alpha) <e_j, e_u> per layer, so
    # no B x hops x H x F mixed pool is built. Only the chosen candidates (one
    # per layer) are gathered again with gradient: the same gradient as through
    # the whole mixed pool (zero off the chosen rows).
    user_layers = jax.lax.stop_gradient(embeddings.user_layers[:, users])  # (hops, B, F)
    pos_scores = jnp.sum(user_layers * jax.lax.stop_gradient(
        embeddings.item_layers[:, positives]), -1).T  # (B, hops)
    cand_scores = jnp.einsum("lbf,lbhf->blh", user_layers, jax.lax.stop_gradient(
        embeddings.item_layers[:, candidates]))
    mixed_scores = (alpha[..., None] * pos_scores[..., None]
                    + (1.0 - alpha[..., None]) * cand_scores)
    chosen = jnp.argmax(mixed_scores, axis=-1)  # (B, hops)
    items = jnp.take_along_axis(candidates, chosen, axis=1)  # (B, hops)
    picked = positive_mix(positive=layer_first(embeddings.item_layers[:, positives]),
                          negative=embeddings.item_layers[jnp.arange(hops), items],
                          alpha=alpha[..., None])  # (B, hops, F)
    pooled, layer0 = picked.mean(axis=1), picked[:, 0]
    weights = jnp.ones((users.shape[0], 1), pooled.dtype)
    return Negatives(items=items, embeddings=pooled[:, None], layer0=layer0[:, None],
                          weights=weights), state
