"""Losses against hand-computed values; PDNS == explicit positive mixing (Eq. 5-10)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pdns_jax import losses
from pdns_jax import models
from pdns_jax import samplers
from pdns_jax import train


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


def _problem(sampler, l2=0.0):
  model = models.Model(kind="lightgcn", num_users=6, num_items=9, embed_dim=4,
                       num_layers=2)
  rng = np.random.default_rng(0)
  train_pairs = np.array([(u, i) for u in range(6) for i in rng.choice(9, 3, replace=False)])
  from pdns_jax import graph as graph_lib
  graph = graph_lib.device_graph(graph_lib.normalized_adjacency(train_pairs, 6, 9))
  data = train.TrainData(users=jnp.asarray(train_pairs[:, 0]),
                         items=jnp.asarray(train_pairs[:, 1]),
                         exclude=samplers.sorted_sets(train_pairs, 6),
                         false_negatives=samplers.sorted_sets(np.zeros((0, 2)), 6))
  spec = train.Spec(model=model, sampler=sampler, pool_size=5, batch_size=8,
                    num_train=len(train_pairs), has_fn=False)
  params = model.init(jax.random.PRNGKey(3))
  batch = (jnp.asarray(train_pairs[:8, 0]), jnp.asarray(train_pairs[:8, 1]), jnp.ones(8))
  return params, batch, graph, data, spec


def _loss_and_grad(sampler, alpha=0.0, beta=1.0, l2=0.0):
  params, batch, graph, data, spec = _problem(sampler)
  hparams = {"alpha": jnp.float32(alpha), "beta": jnp.float32(beta), "l2": jnp.float32(l2)}
  fn = functools.partial(train.batch_loss, hparams=hparams, batch=batch, graph=graph,
                         data=data, key=jax.random.PRNGKey(7), spec=spec)
  (loss, _), grads = jax.value_and_grad(fn, has_aux=True)(params)
  return loss, grads


def test_mix_with_alpha_equals_pdns_with_beta_one_minus_alpha():
  for alpha in (0.7, 0.9):
    for l2 in (0.0, 0.01):
      mix_loss, mix_grads = _loss_and_grad("mix", alpha=alpha, l2=l2)
      pdns_loss, pdns_grads = _loss_and_grad("pdns", beta=1.0 - alpha, l2=l2)
      np.testing.assert_allclose(mix_loss, pdns_loss, rtol=1e-5)
      for a, b in zip(jax.tree_util.tree_leaves(mix_grads),
                      jax.tree_util.tree_leaves(pdns_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_pdns_gradient_is_one_minus_alpha_times_the_delta_weighted_gradient():
  """Eq. 8-9: PDNS's gradient = (1 - alpha) * sum Delta * d(y_ui - y_uj), Delta = 1 - sigmoid."""
  alpha = 0.8
  beta = 1.0 - alpha
  params, batch, graph, data, spec = _problem("pdns")
  hparams = {"alpha": jnp.float32(0), "beta": jnp.float32(beta), "l2": jnp.float32(0)}
  key = jax.random.PRNGKey(7)
  fn = lambda p: train.batch_loss(p, hparams, batch, graph, data, key, spec=spec)[0]
  grads = jax.grad(fn)(params)

  # The same negatives, weighted by Delta (held constant) on plain differences.
  def differences(p):
    users, pos, _ = batch
    u, i = spec.model.embed(p, graph)
    # Recover DNS negatives exactly as batch_loss draws them.
    pool_key, _ = jax.random.split(key)
    pools = jax.vmap(lambda k, user: samplers.candidate_pool(
        k, user, data.exclude, spec.model.num_items, spec.pool_size))(
            jax.random.split(pool_key, users.shape[0]), users)
    pick = jax.vmap(samplers.hardest)(jax.lax.stop_gradient(u[users]),
                                      jax.lax.stop_gradient(i[pools]))
    neg = jnp.take_along_axis(pools, pick[:, None], axis=1)[:, 0]
    return jnp.sum(u[users] * i[pos], -1) - jnp.sum(u[users] * i[neg], -1)
  x = differences(params)
  delta = jax.lax.stop_gradient(1.0 - jax.nn.sigmoid(beta * x))
  surrogate = lambda p: -jnp.mean(delta * differences(p))
  weighted = jax.grad(surrogate)(params)
  for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(weighted)):
    np.testing.assert_allclose(a, (1.0 - alpha) * b, rtol=1e-4, atol=1e-8)


def test_adam_cancels_a_constant_gradient_factor():
  """Why beta's scale does not matter beyond Delta: Adam(c * g) ~= Adam(g)."""
  params = {"w": jnp.array([0.5, -1.0, 2.0])}
  grads = [{"w": jnp.array([0.3, -0.2, 0.05]) * (t + 1)} for t in range(5)]
  def run(scale):
    opt = optax.adam(0.01, eps=1e-12)
    state, p = opt.init(params), params
    for g in grads:
      g = jax.tree_util.tree_map(lambda v: scale * v, g)
      updates, state = opt.update(g, state, p)
      p = optax.apply_updates(p, updates)
    return p["w"]
  np.testing.assert_allclose(run(0.2), run(1.0), rtol=1e-6)
  assert not np.allclose(run(1.0), params["w"])


def test_pdns_with_beta_one_is_dns_and_mix_with_alpha_zero_is_dns():
  dns_loss, dns_grads = _loss_and_grad("dns")
  for other, _ in (_loss_and_grad("pdns", beta=1.0), _loss_and_grad("mix", alpha=0.0)):
    np.testing.assert_allclose(other, dns_loss, rtol=1e-6)
  assert np.isfinite(dns_loss)


def test_mixgcf_loss_is_finite_and_differentiable():
  loss, grads = _loss_and_grad("mixgcf", l2=0.01)
  assert np.isfinite(loss)
  assert any(float(jnp.abs(g).sum()) > 0 for g in jax.tree_util.tree_leaves(grads))
