"""Losses (PAPER.md 2): BPR, soft BPR, L2 on layer-0 embeddings.

All are means over the real (unmasked) examples of a batch; the padded tail of
the last batch carries mask 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def bpr(*, pos_scores: jax.Array, neg_scores: jax.Array, mask: jax.Array) -> jax.Array:
  """Eq. 1-2: mean of -ln sigmoid(y_ui - y_uj)."""
  return _masked_mean(jax.nn.softplus(neg_scores - pos_scores), mask)


def soft_bpr(*, pos_scores: jax.Array, neg_scores: jax.Array, beta,
             mask: jax.Array) -> jax.Array:
  """Eq. 10: mean of -ln sigmoid(beta * (y_ui - y_uj)); beta = 1 - alpha."""
  return _masked_mean(jax.nn.softplus(beta * (neg_scores - pos_scores)), mask)


def l2(*, embeddings: list[jax.Array], mask: jax.Array) -> jax.Array:
  """LightGCN's regulariser: 0.5 * sum of squared layer-0 embeddings / batch size."""
  total = sum(jnp.sum(jnp.square(e), axis=-1) for e in embeddings)
  return 0.5 * _masked_mean(total, mask)
