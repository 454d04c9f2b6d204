"""IRGAN and AdvIR: D's draws, G's REINFORCE step, no gradient across, APR, pre-training, runs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import models
from pdns_jax import program as program_lib
from pdns_jax import step as step_lib
from pdns_jax import train
from pdns_jax.config import ConfigError
from pdns_jax.samplers import adversarial
from pdns_jax.samplers import base
from pdns_jax.samplers import pools

NUM_USERS, NUM_ITEMS, DIM = 6, 10, 4
METRIC_KEYS = ("best_epoch", "valid/recall@50", "test/recall@20", "test/ndcg@20",
               "test/recall@50", "test/ndcg@50")


def _problem(seed=0):
  """A random tiny problem: pairs, TrainData, an MF model, its params and embeddings."""
  rng = np.random.default_rng(seed)
  pairs = np.array([(u, i) for u in range(NUM_USERS)
                    for i in np.sort(rng.choice(NUM_ITEMS, rng.integers(1, 6), replace=False))])
  data = base.TrainData(users=jnp.asarray(pairs[:, 0]), items=jnp.asarray(pairs[:, 1]),
                        exclude=pools.sorted_sets(pairs, NUM_USERS),
                        false_negatives=pools.sorted_sets(np.zeros((0, 2)), NUM_USERS))
  model = models.Model(kind="mf", num_users=NUM_USERS, num_items=NUM_ITEMS, embed_dim=DIM,
                       num_layers=1)
  params = jax.tree_util.tree_map(lambda x: x * 10.0, model.init(jax.random.PRNGKey(seed)))
  batch = base.Batch(users=jnp.asarray(pairs[:, 0]), positives=jnp.asarray(pairs[:, 1]),
                     mask=jnp.ones(len(pairs)).at[-1].set(0.0))  # one padding row
  return pairs, data, model, params, batch


def _embeddings(model, params):
  return base.Embeddings.of(*model.layers(params, None))


def _sampler(kind=adversarial.IRGAN, **settings):
  return kind(num_items=NUM_ITEMS, embed_dim=DIM, **settings)


# Few distinct settings and one problem shape: tests share compiled programs.
FULL = _sampler(temperature=0.5, samples=3, l2=0.1, learning_rate=0.01)
POOL = _sampler(candidates=4, temperature=0.5, samples=3, l2=0.1, learning_rate=0.01)
ADVIR = _sampler(adversarial.AdvIR, candidates=4, temperature=0.5, samples=3, l2=0.1,
                 learning_rate=0.01, eps=0.3, adv_weight=2.0)


def _started_state(sampler, data, embeddings, seed=0):
  """The state after the refresh that copies D into G, with a random bias so p_G is not flat."""
  state = sampler.init(jax.random.PRNGKey(0), data)
  state = jax.jit(sampler.refresh)(state, jax.random.PRNGKey(1), embeddings, data,
                                   jnp.int32(0))
  bias = jax.random.normal(jax.random.PRNGKey(seed + 7), (NUM_ITEMS,))
  state["generator"]["bias"] = bias
  return state


@pytest.mark.parametrize("sampler", [FULL, POOL, ADVIR])
def test_never_returns_a_training_positive(sampler):
  pairs, data, model, params, batch = _problem()
  embeddings = _embeddings(model, params)
  state = _started_state(sampler, data, embeddings)
  positives = {(int(u), int(i)) for u, i in pairs}
  step = jax.jit(sampler.negatives)
  for index in range(6):
    negatives, state = step(state, jax.random.PRNGKey(index), batch, embeddings, data, {})
    assert negatives.items.shape == (len(pairs), 1)
    np.testing.assert_array_equal(negatives.weights, 1.0)
    for u, row in zip(pairs[:, 0], np.asarray(negatives.items)):
      assert (int(u), int(row[0])) not in positives
    np.testing.assert_allclose(negatives.embeddings[:, 0],
                               embeddings.item[negatives.items[:, 0]])


def test_discriminator_draw_is_the_tempered_generator_softmax_over_non_positives():
  pairs, data, model, params, _ = _problem()
  sampler = FULL
  state = _started_state(sampler, data, _embeddings(model, params))
  user, draws = 0, 20000
  users = jnp.full((draws,), user, jnp.int32)
  draw = jax.jit(sampler.discriminator_negative)
  drawn = np.asarray(draw(state["generator"], jax.random.PRNGKey(3), users, data.exclude))
  g = jax.tree_util.tree_map(np.asarray, state["generator"])
  logits = (g["user"][user] @ g["item"].T + g["bias"]) / 0.5
  own = pairs[pairs[:, 0] == user, 1]
  logits[own] = -np.inf
  p = np.exp(logits - logits.max())
  p /= p.sum()
  freq = np.bincount(drawn, minlength=NUM_ITEMS) / draws
  np.testing.assert_array_equal(freq[own], 0.0)
  assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / draws) + 1e-9)


def test_exclusion_mask_marks_exactly_each_users_positives():
  pairs, data, _, _, _ = _problem()
  users = jnp.arange(NUM_USERS)
  mask = np.asarray(adversarial.exclusion_mask(data.exclude, users, NUM_ITEMS))
  expected = np.zeros((NUM_USERS, NUM_ITEMS), bool)
  expected[pairs[:, 0], pairs[:, 1]] = True
  np.testing.assert_array_equal(mask, expected)


_sample = jax.jit(adversarial.generator_sample, static_argnames="samples")
_loss_grad = jax.jit(jax.grad(adversarial.generator_loss))


def _numpy_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_generator_rewards_and_gradient_are_reinforce_by_hand():
  pairs, data, model, params, batch = _problem()
  embeddings = _embeddings(model, params)
  generator = {"user": jax.random.normal(jax.random.PRNGKey(1), (NUM_USERS, DIM)),
               "item": jax.random.normal(jax.random.PRNGKey(2), (NUM_ITEMS, DIM)),
               "bias": jax.random.normal(jax.random.PRNGKey(3), (NUM_ITEMS,))}
  samples, l2 = FULL.samples, FULL.l2
  items, rewards = _sample(
      generator, jax.random.PRNGKey(9), users=batch.users, exclude=data.exclude,
      user_embeddings=embeddings.user, item_embeddings=embeddings.item, samples=samples)
  g = jax.tree_util.tree_map(np.asarray, generator)
  users, items, mask = np.asarray(batch.users), np.asarray(items), np.asarray(batch.mask)
  p = _numpy_softmax(g["user"][users] @ g["item"].T + g["bias"])  # p_G over all items
  positive_sets = {u: set(pairs[pairs[:, 0] == u, 1].tolist()) for u in range(NUM_USERS)}
  # Rewards: (2 sigma(s_D) - 1) p_G(j) / (0.8 p_G(j) + 0.2 [j in I_u] / |I_u|).
  e_u, e_i = np.asarray(embeddings.user), np.asarray(embeddings.item)
  expected = np.zeros_like(rewards)
  for b, u in enumerate(users):
    for k, j in enumerate(items[b]):
      member = float(j in positive_sets[u]) / len(positive_sets[u])
      proposal = 0.8 * p[b, j] + 0.2 * member
      expected[b, k] = (2 / (1 + np.exp(-e_u[u] @ e_i[j])) - 1) * p[b, j] / proposal
  np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-7)
  # The gradient of -mean(ln p_G(j) r) + l2 * 0.5 (|g_u|^2 + mean_k |g_j|^2 + b_j^2).
  r, n = np.asarray(rewards), mask.sum()
  d_user, d_item, d_bias = (np.zeros_like(g["user"]), np.zeros_like(g["item"]),
                            np.zeros_like(g["bias"]))
  for b, u in enumerate(users):
    d_logits = np.zeros(NUM_ITEMS)
    for k, j in enumerate(items[b]):
      onehot = np.eye(NUM_ITEMS)[j]
      d_logits -= mask[b] * r[b, k] * (onehot - p[b]) / (n * samples)
      d_item[j] += l2 * mask[b] * g["item"][j] / (n * samples)
      d_bias[j] += l2 * mask[b] * g["bias"][j] / (n * samples)
    d_user[u] += d_logits @ g["item"] + l2 * mask[b] * g["user"][u] / n
    d_item += np.outer(d_logits, g["user"][u])
    d_bias += d_logits
  grads = _loss_grad(
      generator, users=batch.users, items=jnp.asarray(items), rewards=rewards,
      mask=batch.mask, l2=l2)
  np.testing.assert_allclose(grads["user"], d_user, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grads["item"], d_item, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grads["bias"], d_bias, rtol=1e-4, atol=1e-6)
  # The sampler's step applies exactly this gradient with G's own Adam.
  sampler = FULL
  state = {"generator": generator, "opt": optax.adam(0.01).init(generator)}
  key = jax.random.PRNGKey(4)
  _, new = jax.jit(sampler.negatives)(state, key, batch, embeddings, data, {})
  _, g_key = jax.random.split(key)
  items, rewards = _sample(
      generator, g_key, users=batch.users, exclude=data.exclude,
      user_embeddings=embeddings.user, item_embeddings=embeddings.item, samples=samples)
  grads = _loss_grad(generator, users=batch.users, items=items,
                                                rewards=rewards, mask=batch.mask, l2=l2)
  updates, _ = optax.adam(0.01).update(grads, state["opt"], generator)
  for name in generator:
    np.testing.assert_allclose(new["generator"][name], generator[name] + updates[name],
                               rtol=1e-5, atol=1e-7)
  assert int(new["opt"][0].count) == 1


@pytest.mark.parametrize("sampler", [FULL, ADVIR])
def test_no_gradient_crosses_between_recommender_and_generator(sampler):
  _, data, model, params, batch = _problem()
  state = _started_state(sampler, data, _embeddings(model, params))
  spec = step_lib.Spec(model=model, sampler=sampler, loss="bpr", batch_size=len(batch.users),
                       num_train=len(batch.users), has_fn=False)
  hparams = {"beta": jnp.float32(1.0), "alpha": jnp.float32(0.0), "l2": jnp.float32(0.01)}
  key = jax.random.PRNGKey(2)
  def d_loss_of_generator(generator):
    return step_lib.batch_loss(params, dict(state, generator=generator), hparams, batch, None,
                               data, key, spec=spec)[0]
  # 1. D's loss does not depend on G's parameters (only on its discrete draws).
  for leaf in jax.tree_util.tree_leaves(jax.jit(jax.grad(d_loss_of_generator))(
      state["generator"])):
    np.testing.assert_array_equal(leaf, 0.0)
  # 2. G's update does not depend on D's parameters.
  def generator_of_params(p):
    _, new = sampler.negatives(state, key, batch, _embeddings(model, p), data, hparams)
    return sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(new["generator"]))
  for leaf in jax.tree_util.tree_leaves(jax.jit(jax.grad(generator_of_params))(params)):
    np.testing.assert_array_equal(leaf, 0.0)
  # 3. D's gradient is that of its own loss on the drawn ids: BPR + L2 (+ APR's term).
  negatives, _ = jax.jit(sampler.negatives)(state, key, batch, _embeddings(model, params),
                                            data, {})
  negative = negatives.items[:, 0]
  def hand_loss(p):
    e_u, e_i, e_j = p["user"][batch.users], p["item"][batch.positives], p["item"][negative]
    n = jnp.sum(batch.mask)
    bpr = lambda u, i, j: jnp.sum(
        jax.nn.softplus(jnp.sum(u * j, -1) - jnp.sum(u * i, -1)) * batch.mask) / n
    loss = bpr(e_u, e_i, e_j)
    if isinstance(sampler, adversarial.AdvIR):
      deltas = adversarial.adversarial_perturbation(user=e_u, positive=e_i, negative=e_j,
                                                    mask=batch.mask, eps=sampler.eps)
      loss += sampler.adv_weight * bpr(*(e + d for e, d in zip((e_u, e_i, e_j), deltas)))
    reg = jnp.sum((jnp.sum(e_u**2, -1) + jnp.sum(e_i**2, -1) + jnp.sum(e_j**2, -1))
                  * batch.mask) * 0.5 / n
    return loss + 0.01 * reg
  d_loss = lambda p: step_lib.batch_loss(p, state, hparams, batch, None, data, key,
                                         spec=spec)[0]
  got = jax.jit(jax.grad(d_loss))(params)
  want = jax.jit(jax.grad(hand_loss))(params)
  for name in params:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7)


def test_advir_perturbation_has_norm_eps_along_the_bpr_gradient_and_no_gradient():
  rng = np.random.default_rng(0)
  e_u, e_i, e_j = (jnp.asarray(rng.normal(size=(5, 3)), jnp.float32) for _ in range(3))
  mask = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
  deltas = adversarial.adversarial_perturbation(user=e_u, positive=e_i, negative=e_j,
                                                mask=mask, eps=0.5)
  for delta in deltas:
    np.testing.assert_allclose(np.linalg.norm(delta[:4], axis=-1), 0.5, rtol=1e-5)
    np.testing.assert_array_equal(delta[4], 0.0)  # padding rows are not perturbed
  # Direction: the BPR gradient by hand, sigma(x) (e_j - e_i), sigma(x) (-e_u), sigma(x) e_u.
  u, i, j = (np.asarray(e) for e in (e_u, e_i, e_j))
  s = 1 / (1 + np.exp(-(np.sum(u * j, -1) - np.sum(u * i, -1))))[:, None]
  for delta, g in zip(deltas, (s * (j - i), -s * u, s * u)):
    np.testing.assert_allclose(delta[:4], 0.5 * g[:4] / np.linalg.norm(g[:4], axis=-1,
                                                                        keepdims=True),
                               rtol=1e-5, atol=1e-6)
  def total(e_u, e_i, e_j):
    out = adversarial.adversarial_perturbation(user=e_u, positive=e_i, negative=e_j,
                                               mask=mask, eps=0.5)
    return sum(jnp.sum(d * d ** 2) for d in out)
  for grad in jax.grad(total, argnums=(0, 1, 2))(e_u, e_i, e_j):
    np.testing.assert_array_equal(grad, 0.0)


def test_advir_extra_loss_is_the_weighted_perturbed_bpr():
  _, data, model, params, batch = _problem()
  embeddings = _embeddings(model, params)
  sampler = ADVIR
  state = _started_state(sampler, data, embeddings)
  negatives, _ = jax.jit(sampler.negatives)(state, jax.random.PRNGKey(0), batch, embeddings,
                                            data, {})
  e = [np.asarray(x) for x in (embeddings.user[batch.users], embeddings.item[batch.positives],
                               embeddings.item[negatives.items[:, 0]])]
  deltas = adversarial.adversarial_perturbation(
      user=e[0], positive=e[1], negative=e[2], mask=batch.mask, eps=0.3)
  u, i, j = (x + np.asarray(d) for x, d in zip(e, deltas))
  mask = np.asarray(batch.mask)
  bpr = np.log1p(np.exp(np.sum(u * j, -1) - np.sum(u * i, -1)))
  np.testing.assert_allclose(negatives.extra_loss, 2.0 * np.sum(bpr * mask) / mask.sum(),
                             rtol=1e-5)
  # IRGAN adds nothing.
  plain, _ = jax.jit(POOL.negatives)(state, jax.random.PRNGKey(0), batch, embeddings,
                                           data, {})
  assert plain.extra_loss == 0.0


def _config(sampler="irgan", **overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.model, c.sampler, c.tensorboard, c.pretrain_epochs, c.patience = "mf", sampler, False, 1, 100
  c.eval_every, c.checkpoint_every = 2, 10  # fewer evaluations and saves: a faster test
  for name, value in overrides.items():
    c[name] = value
  return c.lock()


def test_generator_starts_as_a_copy_of_the_pretrained_recommender():
  program = program_lib.build_program(_config(num_epochs=3))
  data = program.train_data()
  state = program.refresh_fn(program.init_state(), data, program.graph)
  np.testing.assert_array_equal(state.sampler_state["generator"]["user"], 0.0)  # not yet
  state, _ = program.pretrain_fn(state, program.hparams, data, program.graph)
  state = program.refresh_fn(state, data, program.graph)  # epoch 1 = pretrain_epochs
  generator, opt = state.sampler_state["generator"], state.sampler_state["opt"]
  np.testing.assert_array_equal(generator["user"], state.params["user"])  # MF: final = layer 0
  np.testing.assert_array_equal(generator["item"], state.params["item"])
  np.testing.assert_array_equal(generator["bias"], 0.0)
  np.testing.assert_array_equal(opt[0].count, 0)
  state, _ = program.epoch_fn(state, program.hparams, data, program.graph)
  trained = jax.tree_util.tree_map(np.array, state.sampler_state)
  assert np.all(trained["opt"][0].count > 0)
  later = program.refresh_fn(state, data, program.graph)  # epoch 2: left alone
  for a, b in zip(jax.tree_util.tree_leaves(trained),
                  jax.tree_util.tree_leaves(later.sampler_state)):
    np.testing.assert_array_equal(a, b)


def test_without_pretraining_the_generator_starts_from_the_initial_model():
  _, data, model, params, _ = _problem()
  sampler = _sampler(pretrain_epochs=0)
  embeddings = _embeddings(model, params)
  state = sampler.refresh(sampler.init(jax.random.PRNGKey(0), data), jax.random.PRNGKey(1),
                          embeddings, data, jnp.int32(0))
  np.testing.assert_array_equal(state["generator"]["user"], embeddings.user)
  np.testing.assert_array_equal(state["generator"]["item"], embeddings.item)


def _metrics(summary):
  return {k: summary[k] for k in METRIC_KEYS}


@pytest.mark.parametrize("sampler", ["irgan", "advir"])
def test_end_to_end_determinism_resume_and_replicas(tmp_path, sampler):
  full = train.train_and_evaluate(_config(sampler, num_epochs=4), tmp_path / "full")
  for key in METRIC_KEYS[1:]:
    assert np.isfinite(full[key]) and 0.0 <= full[key] <= 1.0
  part = tmp_path / "part"
  train.train_and_evaluate(_config(sampler, num_epochs=2), part)
  resumed = train.train_and_evaluate(_config(sampler, num_epochs=4), part)
  assert _metrics(resumed) == _metrics(full)
  many = train.train_and_evaluate(_config(sampler, num_epochs=4, num_replicas=2),
                                  tmp_path / "many")
  other = train.train_and_evaluate(_config(sampler, num_epochs=4, seed=1), tmp_path / "seed1")
  for replica, single in ((many["replicas"][0], full), (many["replicas"][1], other)):
    assert replica["best_epoch"] == single["best_epoch"]
    for key in METRIC_KEYS[1:]:
      assert replica[key] == pytest.approx(single[key], abs=1e-5), key
  assert _metrics(full) != _metrics(other)


@pytest.mark.parametrize("sampler,block,field,value", [
    ("irgan", "irgan", "temperature", 0.0), ("irgan", "irgan", "samples", 0),
    ("irgan", "irgan", "candidates", -1), ("irgan", "irgan", "learning_rate", 0.0),
    ("irgan", "irgan", "l2", -1e-3), ("advir", "advir", "eps", 0.0),
    ("advir", "advir", "adv_weight", -1.0), ("advir", "irgan", "temperature", -1.0)])
def test_bad_knobs_are_rejected_naming_the_field(sampler, block, field, value):
  config = _config(sampler)
  config[block][field] = value
  with pytest.raises(ConfigError, match=rf"^config\.{block}\.{field}:"):
    train.check_config(config)
