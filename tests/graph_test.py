"""The normalised adjacency against hand-computed values, its ELL layout, and the propagations."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdns_jax import graph as graph_lib

# 2 users, 3 items: user 0 - items 0, 1; user 1 - items 1, 2.
HAND_PAIRS = np.array([[0, 0], [0, 1], [1, 1], [1, 2]], np.int32)


def _dense(pairs, num_users, num_items):
  """D^-1/2 A D^-1/2 computed densely, the textbook way."""
  n = num_users + num_items
  a = np.zeros((n, n))
  a[pairs[:, 0], num_users + pairs[:, 1]] = 1.0
  a = a + a.T
  degree = a.sum(1)
  inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1)), 0.0)
  return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def _random_pairs(seed, num_users=7, num_items=11, num_pairs=30):
  """Unique random pairs; user 0 and item 0 are left without edges."""
  rng = np.random.default_rng(seed)
  flat = rng.choice((num_users - 1) * (num_items - 1), num_pairs, replace=False)
  return np.stack([1 + flat // (num_items - 1), 1 + flat % (num_items - 1)], 1)


def test_hand_made_graph_matches_hand_computed_values():
  # Degrees: users 2, 2; items 1, 2, 1; entry (u, i) is 1 / sqrt(d_u d_i).
  h, q = 1 / np.sqrt(2), 0.5
  expected = np.array([
      # u0  u1  i0  i1  i2
      [0,   0,  h,  q,  0],   # u0
      [0,   0,  0,  q,  h],   # u1
      [h,   0,  0,  0,  0],   # i0
      [q,   q,  0,  0,  0],   # i1
      [0,   h,  0,  0,  0],   # i2
  ])
  adjacency = graph_lib.normalized_adjacency(HAND_PAIRS, 2, 3)
  assert adjacency.dtype == np.float32
  np.testing.assert_allclose(adjacency.toarray(), expected, rtol=1e-6)
  np.testing.assert_allclose(adjacency.toarray(), _dense(HAND_PAIRS, 2, 3), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_graph_is_dense_formula_symmetric_without_self_loops(seed):
  pairs = _random_pairs(seed)
  adjacency = graph_lib.normalized_adjacency(pairs, 7, 11)
  dense = adjacency.toarray()
  np.testing.assert_allclose(dense, _dense(pairs, 7, 11), rtol=1e-6)
  np.testing.assert_array_equal(dense, dense.T)
  assert not np.diagonal(dense).any()
  assert not dense[0].any() and not dense[7].any()  # isolated user 0, item 0
  assert adjacency.nnz == 2 * len(pairs)


def test_unsorted_pairs_give_the_same_csr_as_sorted_ones():
  pairs = _random_pairs(3)
  shuffled = pairs[np.random.default_rng(0).permutation(len(pairs))]
  a = graph_lib.normalized_adjacency(pairs, 7, 11)
  b = graph_lib.normalized_adjacency(shuffled, 7, 11)
  for field in ("indptr", "indices", "data"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  for row in range(a.shape[0]):  # sorted within each row, as device_graph needs
    cols = a.indices[a.indptr[row]:a.indptr[row + 1]]
    assert np.all(np.diff(cols) > 0)


def test_device_graph_rows_follow_indptr():
  adjacency = graph_lib.normalized_adjacency(_random_pairs(4), 7, 11)
  graph = graph_lib.device_graph(adjacency, ell=True)
  np.testing.assert_array_equal(graph["indptr"], adjacency.indptr)
  np.testing.assert_array_equal(graph["rows"], np.nonzero(adjacency.toarray())[0])
  np.testing.assert_array_equal(graph["cols"], adjacency.indices)
  assert graph["values"].dtype == jnp.float32


@pytest.mark.parametrize("method", graph_lib.PROPAGATIONS)
def test_every_propagation_is_the_dense_product_and_its_gradient(method):
  pairs = _random_pairs(5)
  dense = _dense(pairs, 7, 11).astype(np.float32)
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(pairs, 7, 11), ell=True)
  rng = np.random.default_rng(0)
  embeddings = jnp.asarray(rng.normal(size=(18, 4)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(18, 4)), jnp.float32)
  propagate = jax.jit(graph_lib.propagate, static_argnames="method")
  # References in numpy: a jnp product would run in TF32 on a GPU.
  np.testing.assert_allclose(propagate(graph, embeddings, method=method),
                             dense @ np.asarray(embeddings), rtol=1e-5, atol=1e-6)
  # Backward: the gradient of <A x, w> is A^T w = A w (A is symmetric).
  grad = jax.grad(lambda x: jnp.sum(graph_lib.propagate(graph, x, method) * weights))
  np.testing.assert_allclose(grad(embeddings), dense.T @ np.asarray(weights), rtol=1e-5,
                             atol=1e-6)


def test_unknown_propagation_names_the_config_field():
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(HAND_PAIRS, 2, 3), ell=True)
  with pytest.raises(ValueError, match="config.propagation"):
    graph_lib.propagate(graph, jnp.zeros((5, 2)), "dense")


def _skewed_pairs(seed, num_users=9, num_items=40):
  """Power-law-ish degrees: user u has up to 4 * (u + 1) items, so rows differ widely."""
  rng = np.random.default_rng(seed)
  return np.array([(u, i) for u in range(num_users)
                   for i in rng.choice(num_items, min(num_items, 4 * (u + 1)), replace=False)])


def _ell_to_dense(ell, n):
  """The matrix an ELL layout holds, rebuilt with numpy from its blocks alone."""
  def rows_of(blocks, width):
    out = []
    for cols, values in blocks:
      dense = np.zeros((cols.shape[1], width))
      for slot in range(cols.shape[0]):
        np.add.at(dense, (np.arange(cols.shape[1]), np.asarray(cols[slot])),
                  np.asarray(values[slot]))
      out.append(dense)
    return np.concatenate(out)
  pieces = rows_of(ell["pieces"], n)
  summed = rows_of(ell["sums"], len(pieces)) @ pieces if ell["sums"] else pieces
  return summed[np.asarray(ell["position"])]


@pytest.mark.parametrize("max_width,max_blocks", [(64, 12), (3, 12), (1, 2), (5, 1)])
def test_ell_layout_holds_the_adjacency_and_pads_with_zeros(max_width, max_blocks):
  adjacency = graph_lib.normalized_adjacency(_skewed_pairs(0), 9, 40)
  ell = graph_lib.ell_blocks(adjacency, max_blocks, max_width)
  np.testing.assert_allclose(_ell_to_dense(ell, 49), adjacency.toarray(), rtol=1e-6)
  assert all(c.shape[0] <= max_width for c, _ in ell["pieces"])
  assert len(ell["pieces"]) <= max_blocks and len(ell["sums"]) <= max_blocks
  # Rows longer than max_width are cut, so a second level appears exactly then.
  assert bool(ell["sums"]) == (np.diff(adjacency.indptr).max() > max_width)
  padded = sum(c.size for c, _ in ell["pieces"])
  real = sum(int(np.count_nonzero(v)) for _, v in ell["pieces"])
  assert real == adjacency.nnz and padded >= real


def test_block_bounds_are_the_least_padding_of_any_grouping():
  degrees = np.sort(np.array([1, 1, 2, 3, 3, 3, 7, 8, 20, 21, 50]))
  def padding(bounds):
    starts = [0] + bounds[:-1]
    return sum(degrees[e - 1] * (e - s) for s, e in zip(starts, bounds))
  distinct_ends = [int(e) for e in np.flatnonzero(np.diff(degrees)) + 1] + [len(degrees)]
  for max_blocks in (1, 2, 3, 4):
    bounds = graph_lib._block_bounds(degrees, max_blocks)  # pylint: disable=protected-access
    assert bounds[-1] == len(degrees) and len(bounds) <= max_blocks
    best = min(padding(list(c) + [len(degrees)])
               for k in range(max_blocks)
               for c in itertools.combinations(distinct_ends[:-1], k))
    assert padding(bounds) == best


@pytest.mark.parametrize("max_width", [2, 7])
def test_ell_with_cut_rows_is_the_dense_product_and_gradient(max_width):
  pairs = _skewed_pairs(1)
  adjacency = graph_lib.normalized_adjacency(pairs, 9, 40)
  graph = graph_lib.device_graph(adjacency, ell=True)
  graph["ell"] = jax.tree_util.tree_map(jnp.asarray,
                                        graph_lib.ell_blocks(adjacency, 3, max_width))
  assert graph["ell"]["sums"]
  dense = _dense(pairs, 9, 40).astype(np.float32)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(49, 5)), jnp.float32)
  two_layers = lambda x: graph_lib.propagate(graph, graph_lib.propagate(graph, x, "ell"), "ell")
  np.testing.assert_allclose(jax.jit(two_layers)(x), dense @ dense @ np.asarray(x), rtol=1e-5,
                             atol=1e-6)
  grad = jax.grad(lambda x: jnp.sum(jnp.sin(two_layers(x))))(x)
  expected = dense.T @ (dense.T @ np.cos(dense @ dense @ np.asarray(x)))
  np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_auto_propagation_is_ell_for_large_graphs_and_a_named_method_is_kept():
  large = graph_lib.AUTO_ELL_MIN_EDGES.get(jax.default_backend())
  if large is not None:
    assert graph_lib.resolve("auto", large) == "ell"
    assert graph_lib.resolve("auto", large - 1) == "segment_sum"
  assert graph_lib.resolve("auto", 10**9) == ("ell" if large else "segment_sum")
  assert graph_lib.resolve("bcsr", 10) == "bcsr"


def test_ell_without_its_layout_says_how_to_build_it():
  adjacency = graph_lib.normalized_adjacency(HAND_PAIRS, 2, 3)
  assert "ell" in graph_lib.device_graph(adjacency, ell=True)
  graph = graph_lib.device_graph(adjacency, ell=False)
  assert "ell" not in graph
  np.testing.assert_allclose(graph_lib.propagate(graph, jnp.ones((5, 2)), "segment_sum"),
                             adjacency.toarray() @ np.ones((5, 2)), rtol=1e-6)
  with pytest.raises(ValueError, match="ell=True"):
    graph_lib.propagate(graph, jnp.ones((5, 2)), "ell")


def test_the_ell_layout_is_built_where_the_run_asks_for_ell_on_any_backend():
  # config.propagation="ell" on a GPU once failed: the layout was built on CPU only.
  adjacency = graph_lib.normalized_adjacency(HAND_PAIRS, 2, 3)
  graph = graph_lib.device_graph(adjacency, method="ell")
  np.testing.assert_allclose(graph_lib.propagate(graph, jnp.ones((5, 2)), "ell"),
                             adjacency.toarray() @ np.ones((5, 2)), rtol=1e-6)
  assert "ell" not in graph_lib.device_graph(adjacency, method="segment_sum")
  assert "ell" not in graph_lib.device_graph(adjacency, method="auto")  # a small graph


@pytest.mark.parametrize("devices", [1, 3, 4])
def test_row_blocks_are_the_dense_product_in_the_padded_node_order(devices):
  pairs = _skewed_pairs(2)
  adjacency = graph_lib.normalized_adjacency(pairs, 9, 40)
  blocks = graph_lib.row_blocks(adjacency, 9, 40, devices)
  padded_users, padded_items = -(-9 // devices) * devices, -(-40 // devices) * devices
  assert blocks["cols"].shape[0] == devices
  # The dense product of the real nodes, padded with zero rows where the tables are.
  node = np.concatenate([np.arange(9), padded_users + np.arange(40)])
  rng = np.random.default_rng(3)
  x = np.zeros((padded_users + padded_items, 4), np.float32)
  x[node] = rng.normal(size=(49, 4))
  got = np.asarray(jax.jit(graph_lib.propagate_blocks)(
      jax.tree_util.tree_map(jnp.asarray, blocks), jnp.asarray(x)))
  expected = np.zeros_like(x)
  expected[node] = _dense(pairs, 9, 40) @ x[node]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
