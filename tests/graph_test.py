"""The normalised adjacency against hand-computed values, and the three propagations."""

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
  graph = graph_lib.device_graph(adjacency)
  np.testing.assert_array_equal(graph["indptr"], adjacency.indptr)
  np.testing.assert_array_equal(graph["rows"], np.nonzero(adjacency.toarray())[0])
  np.testing.assert_array_equal(graph["cols"], adjacency.indices)
  assert graph["values"].dtype == jnp.float32


@pytest.mark.parametrize("method", graph_lib.PROPAGATIONS)
def test_every_propagation_is_the_dense_product_and_its_gradient(method):
  pairs = _random_pairs(5)
  dense = _dense(pairs, 7, 11).astype(np.float32)
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(pairs, 7, 11))
  rng = np.random.default_rng(0)
  embeddings = jnp.asarray(rng.normal(size=(18, 4)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(18, 4)), jnp.float32)
  propagate = jax.jit(graph_lib.propagate, static_argnames="method")
  np.testing.assert_allclose(propagate(graph, embeddings, method=method),
                             dense @ embeddings, rtol=1e-5, atol=1e-6)
  # Backward: the gradient of <A x, w> is A^T w = A w (A is symmetric).
  grad = jax.grad(lambda x: jnp.sum(graph_lib.propagate(graph, x, method) * weights))
  np.testing.assert_allclose(grad(embeddings), dense.T @ weights, rtol=1e-5, atol=1e-6)


def test_unknown_propagation_names_the_config_field():
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(HAND_PAIRS, 2, 3))
  with pytest.raises(ValueError, match="config.propagation"):
    graph_lib.propagate(graph, jnp.zeros((5, 2)), "dense")
