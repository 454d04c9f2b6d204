"""GDNS (reconstruction): the gain update, positive subsets, the pick rule, exclusion, runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import program as program_lib
from pdns_jax.config import ConfigError
from pdns_jax.samplers import base
from pdns_jax.samplers import gdns
import sampler_runs

HPARAMS = {"alpha": jnp.float32(0), "beta": jnp.float32(0), "l2": jnp.float32(0)}


_data = sampler_runs.train_data
_embeddings = sampler_runs.embeddings


def _random_problem(num_users=5, num_items=16, seed=0, dim=3):
  rng = np.random.default_rng(seed)
  pairs = np.array([(u, i) for u in range(num_users)
                    for i in rng.choice(num_items, rng.integers(1, 6), replace=False)])
  return pairs, rng


def test_gain_update_matches_a_numpy_reference_over_three_refreshes():
  pairs, rng = _random_problem()
  data = _data(pairs, 5)
  # P covers every user's positives, so H is the exact mean over I_u.
  sampler = gdns.GDNS(num_items=16, num_candidates=4, pool_size=3, positives=8, decay=0.7)
  state = sampler.init(jax.random.PRNGKey(0), data)
  cand = np.asarray(state["cand"])
  refresh = jax.jit(sampler.refresh)
  h_prev = gain = None
  for epoch in range(3):
    user, item = rng.normal(size=(5, 3)), rng.normal(size=(16, 3))
    state = refresh(state, jax.random.PRNGKey(epoch), _embeddings(user, item), data,
                    jnp.int32(epoch))
    hardness = np.zeros((5, 4))
    for u in range(5):
      positives = pairs[pairs[:, 0] == u, 1]
      gap = (item[cand[u]] @ user[u])[:, None] - (item[positives] @ user[u])[None, :]
      hardness[u] = (1 / (1 + np.exp(-gap))).mean(1)
    gain = np.zeros((5, 4)) if h_prev is None else 0.7 * gain + 0.3 * np.abs(hardness - h_prev)
    h_prev = hardness
    np.testing.assert_allclose(state["h_prev"], hardness, rtol=1e-5)
    np.testing.assert_allclose(state["gain"], gain, rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(state["cand"], cand)  # fixed for the run


def test_positive_subsets_are_distinct_positives_of_the_user():
  pairs, _ = _random_problem(seed=1)
  items, valid = jax.jit(gdns.positive_table, static_argnums=(3, 4))(
      jax.random.PRNGKey(3), jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1]), 5, 3)
  for u in range(5):
    own = set(pairs[pairs[:, 0] == u, 1].tolist())
    chosen = np.asarray(items[u])[np.asarray(valid[u])].tolist()
    assert len(chosen) == min(len(own), 3) == len(set(chosen))
    assert set(chosen) <= own


def test_rank_normalised_gain_and_the_pick_rule():
  np.testing.assert_allclose(gdns.pool_rank(jnp.array([0.3, 0.1, 0.3, 0.9])),
                             [1 / 3, 0.0, 1 / 3, 1.0])
  np.testing.assert_array_equal(gdns.pool_rank(jnp.zeros(4)), 0.0)  # ties: no bonus
  hardness = jnp.array([0.6, 0.5, 0.55])
  gain = jnp.array([0.0, 1.0, 0.5])
  allowed = jnp.ones(3, bool)
  assert int(gdns.gdns_pick(hardness=hardness, gain=gain, gamma=1.0, allowed=allowed)) == 1
  assert int(gdns.gdns_pick(hardness=hardness, gain=gain, gamma=0.0, allowed=allowed)) == 0
  assert int(gdns.gdns_pick(hardness=hardness, gain=gain, gamma=1.0,
                            allowed=jnp.array([True, False, True]))) == 2


def test_step_pick_follows_the_rule_on_its_pool():
  pairs, rng = _random_problem(seed=2)
  data = _data(pairs, 5)
  sampler = gdns.GDNS(num_items=16, num_candidates=6, pool_size=4, gamma=0.5)
  state = sampler.init(jax.random.PRNGKey(0), data)
  state = dict(state, gain=jnp.asarray(rng.uniform(size=(5, 6)), jnp.float32))
  user, item = rng.normal(size=(5, 3)), rng.normal(size=(16, 3))
  batch = base.Batch(users=jnp.asarray(pairs[:, 0]), positives=jnp.asarray(pairs[:, 1]),
                     mask=jnp.ones(len(pairs)))
  key = jax.random.PRNGKey(7)
  negatives, _ = jax.jit(sampler.negatives)(state, key, batch, _embeddings(user, item), data,
                                            HPARAMS)
  pool_key, _ = jax.random.split(key)  # the sampler's pool, from its key
  slots = np.asarray(jax.random.randint(pool_key, (len(pairs), 4), 0, 6))
  users, positives = pairs[:, 0], pairs[:, 1]
  pool = np.asarray(state["cand"])[users[:, None], slots]
  hard = 1 / (1 + np.exp(-(np.einsum("bf,bhf->bh", user[users], item[pool])
                           - np.sum(user[users] * item[positives], 1)[:, None])))
  g = np.asarray(state["gain"])[users[:, None], slots]
  rank = (g[:, None, :] < g[:, :, None]).sum(-1) / 3
  expected = pool[np.arange(len(pairs)), (hard + 0.5 * rank).argmax(1)]
  np.testing.assert_array_equal(np.asarray(negatives.items)[:, 0], expected)


def test_no_training_positive_or_excluded_item_is_ever_a_negative():
  pairs, rng = _random_problem(num_users=8, num_items=20, seed=3)
  data = _data(pairs, 8)
  extra = np.array([(u, i) for u in range(8) for i in rng.choice(20, 3, replace=False)])
  later = _data(pairs, 8, exclude=np.concatenate([pairs, extra]))  # revealed FN
  train_set = {(int(u), int(i)) for u, i in pairs}
  excluded = train_set | {(int(u), int(i)) for u, i in extra}
  sampler = gdns.GDNS(num_items=20, num_candidates=5, pool_size=3)
  state = sampler.init(jax.random.PRNGKey(0), data)
  embeddings = _embeddings(rng.normal(size=(8, 3)), rng.normal(size=(20, 3)))
  batch = base.Batch(users=jnp.asarray(pairs[:, 0]), positives=jnp.asarray(pairs[:, 1]),
                     mask=jnp.ones(len(pairs)))
  refresh, negatives_of = jax.jit(sampler.refresh), jax.jit(sampler.negatives)
  for epoch in range(3):
    stage, bad = (data, train_set) if epoch < 2 else (later, excluded)
    state = refresh(state, jax.random.PRNGKey(epoch), embeddings, stage, jnp.int32(epoch))
    for step in range(3):
      negatives, state = negatives_of(state, jax.random.PRNGKey(step), batch, embeddings,
                                      stage, HPARAMS)
      for u, row in zip(pairs[:, 0], np.asarray(negatives.items)):
        assert not any((int(u), int(i)) in bad for i in row), (epoch, u, row)


@pytest.mark.parametrize("field,value", [("decay", 1.0), ("decay", -0.1), ("positives", 0),
                                         ("num_candidates", 0), ("gamma", -1.0)])
def test_bad_knobs_are_rejected(field, value):
  config = _config()
  config.gdns[field] = value
  with pytest.raises(ConfigError, match=f"^config.gdns.{field}:"):
    program_lib.check_config(config)


def _config(**overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.model, c.sampler, c.tensorboard = "mf", "gdns", False
  for name, value in overrides.items():
    c[name] = value
  return c


def test_runs_are_finite_deterministic_resumable_and_replicas_match(tmp_path):
  sampler_runs.check_finite_resumable_and_replicas(_config, tmp_path)
