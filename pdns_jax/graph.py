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

PROPAGATIONS = ("auto", "ell", "segment_sum", "bcoo", "bcsr")
# Most padded blocks of the ELL layout (rows grouped by degree; see ell_blocks).
MAX_ELL_BLOCKS = 12
# Slots of a block added per loop iteration (fori_loop unroll) in the ELL product.
ELL_UNROLL = 8
# Longest piece of a row in the ELL layout (longer rows are cut, see ell_blocks).
ELL_MAX_WIDTH = 64
# "auto" takes the ELL product from this many stored entries up, per backend.
# CPU: below 50k entries segment_sum is about as fast per step and compiles
# about 3x faster (default synthetic config, 27k entries: 3.0 s against 9.7 s
# to compile the epoch, 0.09 s against 0.06 s per epoch), so small runs and
# tests finish sooner; Gowalla's three layers forward and backward on a 2-core
# CPU: 0.69 s with ell against 2.03 s. GPU: measured at Gowalla's size (1.44M
# entries; a LightGCN + PDNS epoch on one H200 0.89 s with ell against 1.28 s
# with segment_sum) and, with segment_sum, at ml-100k's (160k, launch-bound,
# ell not timed there), so ell from 1M entries. Other backends (TPU: not
# measured) keep segment_sum.
AUTO_ELL_MIN_EDGES = {"cpu": 50_000, "gpu": 1_000_000}


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


def device_graph(adjacency: sp.csr_matrix, ell: bool | None = None,
                 method: str = "auto") -> dict:
  """The adjacency as device arrays: CSR (indptr), per-edge rows, and the ELL blocks.

  Args:
    adjacency: from `normalized_adjacency`.
    ell: also build "ell", the layout of `ell_blocks` (about 1.1x the edges
      again); None = where `method` resolves to it (`resolve`).
    method: the run's `config.propagation`.
  """
  adjacency = adjacency.tocsr()
  adjacency.sort_indices()
  rows = np.repeat(np.arange(adjacency.shape[0], dtype=np.int32), np.diff(adjacency.indptr))
  # copy=False: at 100M edges each needless host copy is 400 MB.
  graph = {
      "rows": jnp.asarray(rows),
      "cols": jnp.asarray(adjacency.indices.astype(np.int32, copy=False)),
      "values": jnp.asarray(adjacency.data.astype(np.float32, copy=False)),
      "indptr": jnp.asarray(adjacency.indptr.astype(np.int32, copy=False)),
  }
  if ell or (ell is None and resolve(method, adjacency.nnz) == "ell"):
    graph["ell"] = jax.tree_util.tree_map(jnp.asarray, ell_blocks(adjacency))
  return graph


def _block_bounds(degrees: np.ndarray, max_blocks: int) -> list[int]:
  """Ends (in the sorted degrees) of at most max_blocks groups of least padded size.

  Dynamic programming over the distinct degrees: a group padded to its largest
  degree w costs w * rows; the sum over groups is minimised exactly.
  """
  values, ends = np.unique(degrees, return_index=False, return_counts=True)
  cum = np.concatenate([[0], np.cumsum(ends)])  # rows up to each distinct degree
  d = len(values)
  inf = np.inf
  cost = np.full(d + 1, inf)
  cost[0] = 0.0
  choice = []
  # span[i, j]: padded size of one group holding distinct degrees i..j-1.
  span = values[None, :].astype(np.float64) * (cum[None, 1:] - cum[:-1, None])
  span[np.tril_indices(d, -1)] = inf
  best = [cost]
  for _ in range(min(max_blocks, d)):
    total = best[-1][:-1, None] + span  # (start i, end j+1)
    pick = np.argmin(total, axis=0)
    new = np.full(d + 1, inf)
    new[1:] = total[pick, np.arange(d)]
    new[0] = 0.0
    choice.append(pick)
    best.append(new)
  k = int(np.argmin([b[d] for b in best[1:]])) + 1
  bounds, end = [], d
  while end > 0:
    bounds.append(int(cum[end]))
    end = int(choice[k - 1][end - 1])
    k -= 1
  return bounds[::-1]


def _padded_blocks(starts: np.ndarray, lengths: np.ndarray, indices: np.ndarray,
                   data: np.ndarray, max_blocks: int):
  """Rows (edges starts[r] : starts[r] + lengths[r]) grouped by length into padded blocks.

  Returns:
    (blocks, position): (cols int32, values float32) pairs, each (width, rows
    in block), slot-major so that one slot's columns are contiguous; padding
    carries column 0 and value 0. The blocks' rows, concatenated, are the rows
    sorted by length; position[r] is row r's place there.
  """
  order = np.argsort(lengths, kind="stable")
  sorted_lengths = lengths[order]
  position = np.empty(len(order), np.int32)
  position[order] = np.arange(len(order), dtype=np.int32)
  blocks, begin = [], 0
  for end in _block_bounds(sorted_lengths, max_blocks):
    rows = order[begin:end]
    slot = np.arange(max(int(sorted_lengths[end - 1]), 1))
    real = slot[:, None] < lengths[rows][None, :]
    edge = np.where(real, starts[rows][None, :] + slot[:, None], 0)
    if len(indices):
      blocks.append((np.where(real, indices[edge], 0).astype(np.int32),
                     np.where(real, data[edge], 0).astype(np.float32)))
    else:
      blocks.append((np.zeros(real.shape, np.int32), np.zeros(real.shape, np.float32)))
    begin = end
  return blocks, position


def ell_blocks(adjacency: sp.csr_matrix, max_blocks: int = MAX_ELL_BLOCKS,
               max_width: int = ELL_MAX_WIDTH) -> dict:
  """The ELL layout of a CSR matrix: rows cut into pieces of at most max_width, two levels.

  Each row is cut into ceil(degree / max_width) pieces of consecutive entries;
  "pieces" groups the pieces by length into padded blocks (their products
  are partial row sums); "sums" adds up each row's partial sums (an ELL of
  ones over the pieces, empty when no row has more than one piece);
  "position"[node] is the node's row in the sums' (or pieces') output. Capping
  the width keeps the number of slot-loop steps small: a block of a few very
  long rows would otherwise cost one (slow, nearly empty) step per entry.
  """
  indptr = adjacency.indptr.astype(np.int64)
  degree = np.diff(indptr)
  count = np.maximum(-(-degree // max_width), 1)  # pieces per node
  owner = np.repeat(np.arange(len(degree)), count)
  first = np.cumsum(count) - count  # each node's first piece
  offset = (np.arange(len(owner)) - first[owner]) * max_width
  piece_lengths = np.clip(degree[owner] - offset, 0, max_width)
  pieces, piece_position = _padded_blocks(indptr[:-1][owner] + offset, piece_lengths,
                                          adjacency.indices, adjacency.data, max_blocks)
  if np.all(count == 1):
    return {"pieces": pieces, "sums": [], "position": piece_position}
  sums, position = _padded_blocks(first, count, piece_position,
                                  np.ones(len(owner), np.float32), max_blocks)
  return {"pieces": pieces, "sums": sums, "position": position}


def _blocks_product(blocks, embeddings):
  """The rows of all blocks (concatenated): per row, the sum of values x gathered rows."""
  features = embeddings.shape[1]
  parts = []
  for cols, values in blocks:  # (width, rows) each
    def add_slot(slot, total, cols=cols, values=values):
      rows = embeddings.at[cols[slot]].get(mode="promise_in_bounds")
      return total + rows * values[slot][:, None]
    width, num_rows = cols.shape
    parts.append(jax.lax.fori_loop(0, width, add_slot,
                                   jnp.zeros((num_rows, features), embeddings.dtype),
                                   unroll=min(width, ELL_UNROLL)))
  return jnp.concatenate(parts)


def _ell_apply(ell, embeddings):
  """A_norm @ embeddings from the ELL layout, with no scatter and no per-edge array.

  Each block is summed slot by slot: a loop over its width adds one gathered
  neighbour row per row to an accumulator of the block's rows. Gathering all
  (rows, width, F) messages at once and reducing them is 10-20x slower on CPU
  (XLA writes the whole message array out, then reads it back).
  """
  out = _blocks_product(ell["pieces"], embeddings)
  if ell["sums"]:
    out = _blocks_product(ell["sums"], out)
  return out[ell["position"]]


@jax.custom_vjp
def _ell_product(ell, embeddings):
  return _ell_apply(ell, embeddings)


def _ell_forward(ell, embeddings):
  return _ell_apply(ell, embeddings), ell


def _ell_backward(ell, cotangent):
  # The normalised adjacency is symmetric (A^T = A), so the transposed
  # product is the same product: no scatter in the backward pass either.
  return None, _ell_apply(ell, cotangent)


_ell_product.defvjp(_ell_forward, _ell_backward)


def resolve(method: str, num_edges: int) -> str:
  """The product "auto" stands for: "ell" for graphs of at least the backend's
  AUTO_ELL_MIN_EDGES stored entries (CPU and GPU), else "segment_sum"."""
  if method != "auto":
    return method
  threshold = AUTO_ELL_MIN_EDGES.get(jax.default_backend())
  return "ell" if threshold is not None and num_edges >= threshold else "segment_sum"


def row_blocks(adjacency: sp.csr_matrix, num_users: int, num_items: int,
               devices: int) -> dict:
  """The adjacency split by destination rows into one block of edges per device.

  For a run over a device mesh (`config.mesh`), where the embedding tables
  are padded to a multiple of `devices` rows and split by rows: nodes are
  renumbered into that padded order (users 0..U-1, items from U rounded up to
  a multiple of `devices`), and device d gets the edges whose destination is
  one of its n / devices rows, with local row numbers, padded with zero-valued
  edges to the longest block.

  Returns:
    {"cols", "rows", "values"}: (devices, edges per block) numpy arrays.
  """
  padded_users = num_users + -num_users % devices
  padded_items = num_items + -num_items % devices
  n = padded_users + padded_items
  block = n // devices
  renumber = lambda ids: np.where(ids < num_users, ids, ids + padded_users - num_users)
  indptr = np.zeros(n + 1, np.int64)
  degree = np.diff(adjacency.indptr)
  indptr[1:] = np.cumsum(np.concatenate([
      degree[:num_users], np.zeros(padded_users - num_users, np.int64),
      degree[num_users:], np.zeros(padded_items - num_items, np.int64)]))
  rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
  cols = renumber(adjacency.indices.astype(np.int64))
  starts = indptr[::block]
  width = max(int(np.diff(starts).max()), 1)
  out = {"cols": np.zeros((devices, width), np.int32),
         "rows": np.full((devices, width), block - 1, np.int32),
         "values": np.zeros((devices, width), np.float32)}
  for d in range(devices):
    edges = slice(starts[d], starts[d + 1])
    count = starts[d + 1] - starts[d]
    out["cols"][d, :count] = cols[edges]
    out["rows"][d, :count] = rows[edges] - d * block
    out["values"][d, :count] = adjacency.data[edges]
  return out


def propagate_blocks(blocks: dict, embeddings: jax.Array) -> jax.Array:
  """A_norm @ embeddings from `row_blocks`, each block's rows computed on its own.

  With the blocks split over a mesh's devices (axis 0), each device sums the
  messages into its own rows from the whole (all-gathered) layer input, so
  the work divides by the device count instead of repeating on every device.
  """
  devices, _ = blocks["cols"].shape
  n, features = embeddings.shape
  def block(cols, rows, values):
    messages = embeddings.at[cols].get(mode="promise_in_bounds") * values[:, None]
    return jax.ops.segment_sum(messages, rows, num_segments=n // devices,
                               indices_are_sorted=True)
  return jax.vmap(block)(blocks["cols"], blocks["rows"], blocks["values"]).reshape(
      n, features)


def propagate(graph: dict, embeddings: jax.Array, method: str = "auto") -> jax.Array:
  """One LightGCN layer: A_norm @ embeddings.

  Args:
    graph: arrays from `device_graph`.
    embeddings: (U + I, F).
    method: "ell" (degree-bucketed slot loop, its own symmetric backward),
      "segment_sum" (gather + sorted segment sum), "bcoo" or "bcsr"
      (jax.experimental.sparse), or "auto" (`resolve`); all compute the
      same product.
  """
  method = resolve(method, graph["cols"].shape[0])
  n = embeddings.shape[0]
  if method == "ell":
    if "ell" not in graph:
      raise ValueError('config.propagation="ell" needs the ELL layout: '
                       'graph.device_graph(adjacency, method="ell") or ell=True')
    return _ell_product(graph["ell"], embeddings)
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
