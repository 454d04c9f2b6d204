"""The normalised user-item adjacency D^-1/2 A D^-1/2 (PAPER.md 3), built once on the host.

Built from the training edge list with numpy/scipy in memory linear in the
number of edges (no dense or dok matrices), then handed to the jitted step as
an argument. Nodes are users 0..U-1 followed by items U..U+I-1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse

PROPAGATIONS = ("segment_sum", "bcoo", "bcsr")


def normalized_adjacency(train: np.ndarray, num_users: int,
                         num_items: int) -> sp.csr_matrix:
  """Returns the symmetric normalised bipartite adjacency as float32 CSR.

  Args:
    train: int (n, 2) unique (user, item) training pairs.
    num_users, num_items: sizes; nodes with no edge get a zero row.
  """
  users = train[:, 0].astype(np.int64)
  items = train[:, 1].astype(np.int64)
  user_degree = np.bincount(users, minlength=num_users).astype(np.float32)
  item_degree = np.bincount(items, minlength=num_items).astype(np.float32)
  weight = 1.0 / np.sqrt(user_degree[users] * item_degree[items])
  n = num_users + num_items
  rows = np.concatenate([users, items + num_users])
  cols = np.concatenate([items + num_users, users])
  values = np.concatenate([weight, weight]).astype(np.float32)
  return sp.csr_matrix((values, (rows, cols)), shape=(n, n))


def device_graph(adjacency: sp.csr_matrix) -> dict:
  """The adjacency as device arrays: CSR (indptr) plus per-edge rows, sorted by row."""
  adjacency = adjacency.tocsr()
  adjacency.sort_indices()
  rows = np.repeat(np.arange(adjacency.shape[0], dtype=np.int32), np.diff(adjacency.indptr))
  return {
      "rows": jnp.asarray(rows),
      "cols": jnp.asarray(adjacency.indices.astype(np.int32)),
      "values": jnp.asarray(adjacency.data.astype(np.float32)),
      "indptr": jnp.asarray(adjacency.indptr.astype(np.int32)),
  }


def propagate(graph: dict, embeddings: jax.Array, method: str = "segment_sum") -> jax.Array:
  """One LightGCN layer: A_norm @ embeddings.

  Args:
    graph: arrays from `device_graph`.
    embeddings: (U + I, F).
    method: "segment_sum" (gather + sorted segment sum), "bcoo" or "bcsr"
      (jax.experimental.sparse); all compute the same product.
  """
  n = embeddings.shape[0]
  if method == "segment_sum":
    messages = embeddings[graph["cols"]] * graph["values"][:, None]
    return jax.ops.segment_sum(messages, graph["rows"], num_segments=n,
                               indices_are_sorted=True)
  if method == "bcoo":
    indices = jnp.stack([graph["rows"], graph["cols"]], axis=1)
    matrix = jsparse.BCOO((graph["values"], indices), shape=(n, n),
                          indices_sorted=True, unique_indices=True)
    return matrix @ embeddings
  if method == "bcsr":
    matrix = jsparse.BCSR((graph["values"], graph["cols"], graph["indptr"]),
                          shape=(n, n))
    return matrix @ embeddings
  raise ValueError(f"config.propagation: unknown method {method!r}; "
                   f"choose one of {PROPAGATIONS}")
