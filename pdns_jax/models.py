"""MF and LightGCN (PAPER.md 3): free embeddings, optionally propagated over the graph."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pdns_jax import graph as graph_lib

MODELS = ("mf", "lightgcn")


def layer_mean(layers: jax.Array) -> jax.Array:
  """(hops, N, F) -> (N, F), the mean over hops as elementwise adds.

  XLA on CPU runs a reduce over the leading axis as a separate (YNNPACK)
  kernel that took 11 ms per ml-100k step for a 4 x 1682 x 64 array; the
  unrolled sum fuses with its neighbours.
  """
  total = layers[0]
  for hop in range(1, layers.shape[0]):
    total = total + layers[hop]
  return total / layers.shape[0]


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
  propagation: str = "auto"  # graph.PROPAGATIONS; auto: the fastest on the backend
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
    if "blocks" in graph:  # a mesh run: padded tables, each device its rows
      layer = jnp.concatenate([params["user"], params["item"]], axis=0)
      product = lambda layer: graph_lib.propagate_blocks(graph["blocks"], layer)
      first_item = params["user"].shape[0]
    else:
      layer = jnp.concatenate([users, items], axis=0)
      product = lambda layer: graph_lib.propagate(graph, layer, self.propagation)
      first_item = self.num_users
    def hop(layer, _):
      layer = product(layer)
      return layer, layer
    # A scan, so the product (and its backward) is compiled once, not per layer.
    _, hops = jax.lax.scan(hop, layer, length=self.num_layers)
    stack = jnp.concatenate([layer[None], hops])
    return (stack[:, :self.num_users],
            stack[:, first_item:first_item + self.num_items])

  def embed(self, params: dict, graph) -> tuple[jax.Array, jax.Array]:
    """Final embeddings: the mean over layers E^(0..L) (just E^(0) for MF)."""
    users, items = self.layers(params, graph)
    return layer_mean(users), layer_mean(items)
