"""Losses against hand-computed values; PDNS == explicit positive mixing (Eq. 5-10).

The equivalences are checked through the trainer's `step.batch_loss`, with the
samplers built from the registry, so they hold for what actually trains.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdns_jax import graph as graph_lib
from pdns_jax import losses
from pdns_jax import models
from pdns_jax import samplers
from pdns_jax import step as step_lib
from pdns_jax.samplers import base
from pdns_jax.samplers import pools


def test_bpr_and_soft_bpr_hand_values():
  pos, neg = jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0])
  mask = jnp.ones(2)
  expected = (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(1.0))) / 2
  np.testing.assert_allclose(losses.bpr(pos_scores=pos, neg_scores=neg, mask=mask),
                             expected, rtol=1e-6)
  expected_soft = (np.log1p(np.exp(-0.2)) + np.log1p(np.exp(0.2))) / 2
  np.testing.assert_allclose(
      losses.soft_bpr(pos_scores=pos, neg_scores=neg, beta=0.2, mask=mask),
      expected_soft, rtol=1e-6)


def test_weighted_negatives_hand_value():
  # Example 0 has two negatives weighted 0.25 / 0.75, example 1 one negative.
  pos = jnp.array([1.0, 0.0])
  neg = jnp.array([[0.0, 1.0], [2.0, 2.0]])
  weights = jnp.array([[0.25, 0.75], [1.0, 0.0]])
  sp = lambda x: np.log1p(np.exp(x))
  expected = ((0.25 * sp(-1.0) + 0.75 * sp(0.0)) + sp(2.0)) / 2
  np.testing.assert_allclose(
      losses.bpr(pos_scores=pos, neg_scores=neg, weights=weights, mask=jnp.ones(2)),
      expected, rtol=1e-6)
  np.testing.assert_allclose(
      losses.ranking_loss("soft_bpr", pos_scores=pos, neg_scores=neg, weights=weights,
                          beta=0.5, mask=jnp.ones(2)),
      ((0.25 * sp(-0.5) + 0.75 * sp(0.0)) + sp(1.0)) / 2, rtol=1e-6)
  with pytest.raises(ValueError, match="config.loss"):
    losses.ranking_loss("hinge", pos_scores=pos, neg_scores=neg, beta=1.0, mask=jnp.ones(2))


def test_mask_drops_padding():
  pos, neg = jnp.array([2.0, 0.0, 100.0]), jnp.array([1.0, 1.0, -100.0])
  full = losses.bpr(pos_scores=pos[:2], neg_scores=neg[:2], mask=jnp.ones(2))
  masked = losses.bpr(pos_scores=pos, neg_scores=neg, mask=jnp.array([1.0, 1.0, 0.0]))
  np.testing.assert_allclose(masked, full, rtol=1e-6)


def test_l2_hand_value():
  a = jnp.array([[1.0, 2.0], [0.0, 1.0]])
  b = jnp.array([[3.0, 0.0], [1.0, 1.0]])
  # 0.5 * mean over rows of (|a|^2 + |b|^2) = 0.5 * ((5 + 9) + (1 + 2)) / 2
  np.testing.assert_allclose(losses.l2(embeddings=[a, b], mask=jnp.ones(2)), 4.25)
  # K = 2 negatives per row, weighted: row 0 = 0.5 * 5 + 0.5 * 9, row 1 = 1 * 1.
  both = jnp.stack([a, b], axis=1)
  np.testing.assert_allclose(
      losses.l2(embeddings=[both], weights=[jnp.array([[0.5, 0.5], [1.0, 0.0]])],
                mask=jnp.ones(2)), 0.5 * (7.0 + 1.0) / 2)


class _Config(dict):
  __getattr__ = dict.__getitem__


def _Split(num_items, train=None):  # pylint: disable=invalid-name
  """The host-side facts a sampler is built from (a stand-in for data.Split)."""
  return types.SimpleNamespace(num_items=num_items, train=train)


def _problem(sampler_name, loss="auto"):
  model = models.Model(kind="lightgcn", num_users=6, num_items=9, embed_dim=4,
                       num_layers=2)
  rng = np.random.default_rng(0)
  train_pairs = np.array([(u, i) for u in range(6) for i in rng.choice(9, 3, replace=False)])
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(train_pairs, 6, 9))
  data = base.TrainData(users=jnp.asarray(train_pairs[:, 0]),
                        items=jnp.asarray(train_pairs[:, 1]),
                        exclude=pools.sorted_sets(train_pairs, 6),
                        false_negatives=pools.sorted_sets(np.zeros((0, 2)), 6))
  config = _Config(sampler=sampler_name, pool_size=5, loss=loss)
  spec = step_lib.Spec(model=model, sampler=samplers.build(config, _Split(9, train_pairs)),
                       loss=samplers.loss_name(config), batch_size=8,
                       num_train=len(train_pairs), has_fn=False)
  params = model.init(jax.random.PRNGKey(3))
  batch = base.Batch(users=jnp.asarray(train_pairs[:8, 0]),
                     positives=jnp.asarray(train_pairs[:8, 1]), mask=jnp.ones(8))
  return params, batch, graph, data, spec


KEY = jax.random.PRNGKey(7)


def _loss_and_grad(sampler, alpha=0.0, beta=1.0, l2=0.0, loss="auto"):
  params, batch, graph, data, spec = _problem(sampler, loss)
  hparams = {"alpha": jnp.float32(alpha), "beta": jnp.float32(beta), "l2": jnp.float32(l2)}
  fn = lambda p: step_lib.batch_loss(p, (), hparams, batch, graph, data, KEY, spec=spec)[0]
  return jax.value_and_grad(fn)(params)


def _assert_trees_close(a, b, **tolerances):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, **tolerances)


def test_mix_with_alpha_equals_pdns_with_beta_one_minus_alpha():
  for alpha in (0.7, 0.9):
    for l2 in (0.0, 0.01):
      mix_loss, mix_grads = _loss_and_grad("mix", alpha=alpha, l2=l2)
      pdns_loss, pdns_grads = _loss_and_grad("pdns", beta=1.0 - alpha, l2=l2)
      np.testing.assert_allclose(mix_loss, pdns_loss, rtol=1e-5)
      _assert_trees_close(mix_grads, pdns_grads, rtol=1e-4, atol=1e-7)


def test_pdns_gradient_is_one_minus_alpha_times_the_delta_weighted_gradient():
  """Eq. 8-9: PDNS's gradient = (1 - alpha) * sum Delta * d(y_ui - y_uj), Delta = 1 - sigmoid."""
  alpha = 0.8
  beta = 1.0 - alpha
  _, grads = _loss_and_grad("pdns", beta=beta)
  params, batch, graph, data, spec = _problem("pdns")

  # The negatives the sampler chose, asked through its interface with the step's key.
  def negatives_of(p):
    embeddings = base.Embeddings.of(*spec.model.layers(p, graph))
    return spec.sampler.negatives((), KEY, batch, embeddings, data, {})[0].items[:, 0]
  negative = negatives_of(params)

  def differences(p):
    u, i = spec.model.embed(p, graph)
    return (jnp.sum(u[batch.users] * i[batch.positives], -1)
            - jnp.sum(u[batch.users] * i[negative], -1))
  delta = jax.lax.stop_gradient(1.0 - jax.nn.sigmoid(beta * differences(params)))
  weighted = jax.grad(lambda p: -jnp.mean(delta * differences(p)))(params)
  _assert_trees_close(grads, jax.tree_util.tree_map(lambda g: (1.0 - alpha) * g, weighted),
                      rtol=1e-4, atol=1e-8)


def test_pdns_with_beta_one_is_dns_and_mix_with_alpha_zero_is_dns():
  dns_loss, dns_grads = _loss_and_grad("dns", l2=0.01)
  for loss, grads in (_loss_and_grad("pdns", beta=1.0, l2=0.01),
                      _loss_and_grad("mix", alpha=0.0, l2=0.01),
                      _loss_and_grad("dns", beta=1.0, l2=0.01, loss="soft_bpr")):
    np.testing.assert_allclose(loss, dns_loss, rtol=1e-6)
    _assert_trees_close(grads, dns_grads, rtol=1e-5, atol=1e-8)
  # And a smaller beta does change the loss (the checks above could not pass vacuously).
  assert not np.isclose(_loss_and_grad("pdns", beta=0.1)[0], dns_loss)


def test_mixgcf_loss_is_finite_and_differentiable():
  loss, grads = _loss_and_grad("mixgcf", l2=0.01)
  assert np.isfinite(loss)
  assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree_util.tree_leaves(grads))
