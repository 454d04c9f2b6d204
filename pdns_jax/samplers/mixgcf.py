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
    pooled, layer0, chosen = jax.vmap(mixgcf_negative)(
        user_layers=layer_first(embeddings.user_layers[:, users]),
        positive_layers=layer_first(embeddings.item_layers[:, positives]),
        candidate_layers=layer_first(embeddings.item_layers[:, candidates]), alpha=alpha)
    items = jnp.take_along_axis(candidates, chosen, axis=1)  # (B, hops)
    weights = jnp.ones((users.shape[0], 1), pooled.dtype)
    return Negatives(items=items, embeddings=pooled[:, None], layer0=layer0[:, None],
                          weights=weights), state
