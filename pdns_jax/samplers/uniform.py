"""RNS (PAPER.md 2): one negative drawn uniformly from I \\ I_u. The smallest sampler."""

from __future__ import annotations

import dataclasses

import jax

from pdns_jax.samplers.base import Sampler, single
from pdns_jax.samplers.pools import batch_pools


@dataclasses.dataclass(frozen=True)
class Uniform(Sampler):
  """Random negative sampling: no state, no scores, one exact uniform draw."""

  def negatives(self, state, key, batch, embeddings, data, hparams):
    del hparams
    pool_key, _ = jax.random.split(key)
    negative = batch_pools(pool_key, batch.users, data.exclude, self.num_items, 1)[:, 0]
    return single(negative, embeddings.item[negative],
                       embeddings.item_layers[0][negative]), state
