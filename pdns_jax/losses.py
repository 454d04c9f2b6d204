"""Losses (PAPER.md 2): BPR, soft BPR, L2 on layer-0 embeddings.

All are means over the real (unmasked) examples of a batch; the padded tail of
the last batch carries mask 0. `neg_scores` may hold K negatives per example,
(B, K), each weighted by `weights` (rows summing to 1, as samplers return).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ("bpr", "soft_bpr")


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _per_example(terms: jax.Array, weights: jax.Array | None) -> jax.Array:
  """(B,) -> itself; (B, K) -> the weighted sum over K."""
  if terms.ndim == 1:
    return terms
  return jnp.sum(terms * (1.0 if weights is None else weights), axis=-1)


def _broadcast(pos_scores: jax.Array, neg_scores: jax.Array) -> jax.Array:
  return pos_scores if neg_scores.ndim == 1 else pos_scores[:, None]


def bpr(*, pos_scores: jax.Array, neg_scores: jax.Array, mask: jax.Array,
        weights: jax.Array | None = None) -> jax.Array:
  """Eq. 1-2: mean of -ln sigmoid(y_ui - y_uj)."""
  terms = jax.nn.softplus(neg_scores - _broadcast(pos_scores, neg_scores))
  return _masked_mean(_per_example(terms, weights), mask)


def soft_bpr(*, pos_scores: jax.Array, neg_scores: jax.Array, beta, mask: jax.Array,
             weights: jax.Array | None = None) -> jax.Array:
  """Eq. 10: mean of -ln sigmoid(beta * (y_ui - y_uj)); beta = 1 - alpha."""
  terms = jax.nn.softplus(beta * (neg_scores - _broadcast(pos_scores, neg_scores)))
  return _masked_mean(_per_example(terms, weights), mask)


def ranking_loss(name: str, *, pos_scores: jax.Array, neg_scores: jax.Array, beta,
                 mask: jax.Array, weights: jax.Array | None = None) -> jax.Array:
  """The loss `name` (one of LOSSES); beta is read by soft BPR only."""
  if name == "bpr":
    return bpr(pos_scores=pos_scores, neg_scores=neg_scores, mask=mask, weights=weights)
  if name == "soft_bpr":
    return soft_bpr(pos_scores=pos_scores, neg_scores=neg_scores, beta=beta, mask=mask,
                    weights=weights)
  raise ValueError(f"config.loss: unknown loss {name!r}; choose one of {LOSSES}")


def l2(*, embeddings: list[jax.Array], mask: jax.Array,
       weights: list[jax.Array | None] | None = None) -> jax.Array:
  """LightGCN's regulariser: 0.5 * sum of squared layer-0 embeddings / batch size.

  Args:
    embeddings: (B, F) arrays, or (B, K, F) for K negatives per example.
    mask: (B,) real examples.
    weights: per array, None or (B, K) weights of its K rows (a sampler's
      negative weights), so an example's negatives count as one in expectation.
  """
  weights = weights or [None] * len(embeddings)
  total = sum(_per_example(jnp.sum(jnp.square(e), axis=-1), w)
              for e, w in zip(embeddings, weights))
  return 0.5 * _masked_mean(total, mask)
