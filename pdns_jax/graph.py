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

  The CSR is filled directly, one half at a time (user rows, then item rows),
  from int64 keys major * size + minor sorted in place, with no per-row sort:
  at 100M edges this takes a third of the time of scipy's coo -> csr route
  (2.6-3.8 s against 7.4-12 s) and 1.7 GB less peak memory (3.6 GB, process).

  Args:
    train: int (n, 2) unique (user, item) training pairs (repeats are summed,
      as scipy would).
    num_users, num_items: sizes; nodes with no edge get a zero row.

  Returns:
    The (U + I) x (U + I) matrix with sorted indices and no explicit zeros.
  """
  train = np.asarray(train)
  user_degree = np.bincount(train[:, 0], minlength=num_users).astype(np.float32)
  item_degree = np.bincount(train[:, 1], minlength=num_items).astype(np.float32)
  n = num_users + num_items
  row_sizes, indices, values = [], [], []
  for major, major_size, minor_size, minor_offset in ((0, num_users, num_items, num_users),
                                                      (1, num_items, num_users, 0)):
    rows, cols, counts = _sorted_half(train[:, major], train[:, 1 - major], minor_size)
    user, item = (rows, cols) if major == 0 else (cols, rows)
    weight = 1.0 / np.sqrt(user_degree[user] * item_degree[item])
    if counts is not None:  # repeated pairs: their weights add up
      weight *= counts
    del user, item
    row_sizes.append(np.bincount(rows, minlength=major_size))
    del rows
    indices.append((cols + minor_offset).astype(np.int32))
    values.append(weight.astype(np.float32, copy=False))
    del cols, weight
  indptr = np.zeros(n + 1, np.int64)
  np.cumsum(np.concatenate(row_sizes), out=indptr[1:])
  indices, values = np.concatenate(indices), np.concatenate(values)
  adjacency = sp.csr_matrix((values, indices, indptr), shape=(n, n))
  adjacency.has_sorted_indices = True  # true by construction; spares a check
  return adjacency


def _sorted_half(major: np.ndarray, minor: np.ndarray, minor_size: int):
  """(major ids, minor ids, repeat counts or None) of the unique pairs, sorted.

  Sorting int64 keys major * minor_size + minor in place is several times
  faster than an argsort, and the ids are recovered from the sorted keys.
  """
  key = major.astype(np.int64)
  key *= minor_size
  key += minor
  if not np.all(key[1:] > key[:-1]):  # the split hands over (user, item)-sorted pairs
    key.sort()
  first = np.ones(len(key), bool)
  np.not_equal(key[1:], key[:-1], out=first[1:])
  counts = None
  if not first.all():
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(key))).astype(np.float32)
    key = key[starts]
  del first
  rows, cols = np.divmod(key, minor_size)
  return rows, cols, counts


def device_graph(adjacency: sp.csr_matrix) -> dict:
  """The adjacency as device arrays: CSR (indptr) plus per-edge rows, sorted by row."""
  adjacency = adjacency.tocsr()
  adjacency.sort_indices()
  rows = np.repeat(np.arange(adjacency.shape[0], dtype=np.int32), np.diff(adjacency.indptr))
  # copy=False: at 100M edges each needless host copy is 400 MB.
  return {
      "rows": jnp.asarray(rows),
      "cols": jnp.asarray(adjacency.indices.astype(np.int32, copy=False)),
      "values": jnp.asarray(adjacency.data.astype(np.float32, copy=False)),
      "indptr": jnp.asarray(adjacency.indptr.astype(np.int32, copy=False)),
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
