"""DNS (Eq. 3) and DNS with fixed positive mixing (Eq. 4, the study of Sec. 3.1).

PDNS is DNS trained with soft BPR (Eq. 10): the registry pairs this sampler
with `losses.soft_bpr` under the name "pdns".
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pdns_jax.samplers.base import Sampler, single
from pdns_jax.samplers.pools import batch_pools


def hardest(user_embedding: jax.Array, candidate_embeddings: jax.Array) -> jax.Array:
  """DNS pick (Eq. 3): index of the highest-scoring candidate for one example.

  Args:
    user_embedding: (F,).
    candidate_embeddings: (H, F).
  """
  return jnp.argmax(candidate_embeddings @ user_embedding)


def positive_mix(*, positive: jax.Array, negative: jax.Array, alpha) -> jax.Array:
  """Eq. 4: e~ = alpha * e_i + (1 - alpha) * e_j."""
  return alpha * positive + (1.0 - alpha) * negative


@dataclasses.dataclass(frozen=True)
class Hardest(Sampler):
  """DNS: the highest-scoring of H uniform candidates, by the final embeddings.

  Attributes:
    pool_size: H.
    mix: if set, the chosen negative is replaced by alpha * e_i + (1 - alpha)
      * e_j with this replica's `hparams["alpha"]` (Eq. 4; alpha 0 is DNS).
  """

  pool_size: int = 32
  mix: bool = False

  def negatives(self, state, key, batch, embeddings, data, hparams):
    pool_key, _ = jax.random.split(key)
    candidates = batch_pools(pool_key, batch.users, data.exclude, self.num_items,
                                   self.pool_size)
    # The choice is not differentiated: only the chosen negative's score is.
    pick = jax.vmap(hardest)(jax.lax.stop_gradient(embeddings.user[batch.users]),
                             jax.lax.stop_gradient(embeddings.item[candidates]))
    negative = jnp.take_along_axis(candidates, pick[:, None], axis=1)[:, 0]
    chosen = embeddings.item[negative]
    if self.mix:
      chosen = positive_mix(positive=embeddings.item[batch.positives], negative=chosen,
                            alpha=hparams["alpha"])
    return single(negative, chosen, embeddings.item_layers[0][negative]), state
