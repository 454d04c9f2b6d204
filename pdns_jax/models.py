"""MF and LightGCN (PAPER.md 3): free embeddings, optionally propagated over the graph."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pdns_jax import graph as graph_lib

MODELS = ("mf", "lightgcn")


@dataclasses.dataclass(frozen=True)
class Model:
  """A recommender: `init(key) -> params`, `layers(params, graph) -> per-layer embeddings`.

  Static (hashable) so it can parameterise jitted functions.
  """

  kind: str
  num_users: int
  num_items: int
  embed_dim: int
  num_layers: int = 3
  propagation: str = "segment_sum"
  init_scale: float = 0.1
  # Tables get zero rows appended up to a multiple of this, so that they split
  # evenly over a device mesh by rows. The extra rows are never looked up, get
  # no gradient and stay zero; the real rows are the same for any multiple.
  row_multiple: int = 1

  def init(self, key: jax.Array) -> dict:
    """Layer-0 (free) embeddings, N(0, init_scale^2) as in LightGCN."""
    user_key, item_key = jax.random.split(key)
    def table(key, n):
      rows = self.init_scale * jax.random.normal(key, (n, self.embed_dim))
      return jnp.pad(rows, ((0, -n % self.row_multiple), (0, 0)))
    return {"user": table(user_key, self.num_users), "item": table(item_key, self.num_items)}

  @property
  def num_hops(self) -> int:
    """Number of embedding layers that are averaged (1 for MF)."""
    return self.num_layers + 1 if self.kind == "lightgcn" else 1

  def layers(self, params: dict, graph) -> tuple[jax.Array, jax.Array]:
    """Embeddings of every layer: users (hops, U, F), items (hops, I, F)."""
    users, items = params["user"][:self.num_users], params["item"][:self.num_items]
    if self.kind == "mf":
      return users[None], items[None]
    layer = jnp.concatenate([users, items], axis=0)
    stack = [layer]
    for _ in range(self.num_layers):
      layer = graph_lib.propagate(graph, layer, self.propagation)
      stack.append(layer)
    stack = jnp.stack(stack)
    return stack[:, :self.num_users], stack[:, self.num_users:]

  def embed(self, params: dict, graph) -> tuple[jax.Array, jax.Array]:
    """Final embeddings: the mean over layers E^(0..L) (just E^(0) for MF)."""
    users, items = self.layers(params, graph)
    return users.mean(axis=0), items.mean(axis=0)
