"""MF and LightGCN: layer shapes, and propagation + mean pooling against a dense reference."""

import jax
import numpy as np
import pytest

from pdns_jax import graph as graph_lib
from pdns_jax import models

NUM_USERS, NUM_ITEMS, DIM = 4, 6, 3
PAIRS = np.array([(0, 0), (0, 2), (1, 2), (1, 5), (2, 1), (3, 4), (3, 0)])


def _dense_adjacency():
  n = NUM_USERS + NUM_ITEMS
  a = np.zeros((n, n))
  for u, i in PAIRS:
    a[u, NUM_USERS + i] = a[NUM_USERS + i, u] = 1.0
  degree = a.sum(1)
  scale = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1)), 0.0)
  return scale[:, None] * a * scale[None, :]


def test_mf_layers_are_the_free_embeddings():
  model = models.Model(kind="mf", num_users=NUM_USERS, num_items=NUM_ITEMS, embed_dim=DIM)
  params = model.init(jax.random.PRNGKey(0))
  users, items = model.layers(params, None)
  assert users.shape == (1, NUM_USERS, DIM) and items.shape == (1, NUM_ITEMS, DIM)
  final_users, final_items = model.embed(params, None)
  np.testing.assert_array_equal(final_users, params["user"])
  np.testing.assert_array_equal(final_items, params["item"])


@pytest.mark.parametrize("propagation", graph_lib.PROPAGATIONS)
@pytest.mark.parametrize("num_layers", [1, 3])
def test_lightgcn_layers_and_mean_pooling_match_a_dense_reference(propagation, num_layers):
  model = models.Model(kind="lightgcn", num_users=NUM_USERS, num_items=NUM_ITEMS,
                       embed_dim=DIM, num_layers=num_layers, propagation=propagation)
  params = model.init(jax.random.PRNGKey(1))
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(PAIRS, NUM_USERS, NUM_ITEMS),
                                 ell=True)
  users, items = model.layers(params, graph)
  assert users.shape == (num_layers + 1, NUM_USERS, DIM)
  assert items.shape == (num_layers + 1, NUM_ITEMS, DIM)
  a = _dense_adjacency()
  layer = np.concatenate([params["user"], params["item"]])
  stack = [layer]
  for _ in range(num_layers):
    layer = a @ layer
    stack.append(layer)
  stack = np.stack(stack)
  np.testing.assert_allclose(users, stack[:, :NUM_USERS], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(items, stack[:, NUM_USERS:], rtol=1e-5, atol=1e-6)
  final_users, final_items = model.embed(params, graph)
  np.testing.assert_allclose(final_users, stack.mean(0)[:NUM_USERS], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(final_items, stack.mean(0)[NUM_USERS:], rtol=1e-5, atol=1e-6)


def test_layer_mean_is_the_mean_over_hops():
  layers = jax.random.normal(jax.random.PRNGKey(2), (4, 5, 3))
  np.testing.assert_allclose(models.layer_mean(layers), layers.mean(0), rtol=1e-6, atol=1e-7)
  assert models.layer_mean(layers[:1]).shape == (5, 3)


def test_lightgcn_parameter_gradients_agree_across_propagations():
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(PAIRS, NUM_USERS, NUM_ITEMS),
                                 ell=True)
  grads = {}
  for propagation in ("ell", "segment_sum", "bcsr"):
    model = models.Model(kind="lightgcn", num_users=NUM_USERS, num_items=NUM_ITEMS,
                         embed_dim=DIM, num_layers=3, propagation=propagation)
    params = model.init(jax.random.PRNGKey(3))
    def loss(params, model=model):
      users, items = model.embed(params, graph)
      return jax.numpy.sum(jax.numpy.tanh(users @ items.T))
    grads[propagation] = jax.grad(loss)(params)
  for name in ("segment_sum", "bcsr"):
    for table in ("user", "item"):
      assert np.abs(grads["ell"][table]).max() > 0
      np.testing.assert_allclose(grads["ell"][table], grads[name][table], rtol=1e-5, atol=1e-6)
