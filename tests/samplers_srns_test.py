"""SRNS: variance-aware picks, the history refresh, the memory update, exclusion, runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import program as program_lib
from pdns_jax.config import ConfigError
from pdns_jax.samplers import base
from pdns_jax.samplers import srns
import sampler_runs

HPARAMS = {"alpha": jnp.float32(0), "beta": jnp.float32(0), "l2": jnp.float32(0)}


_data = sampler_runs.train_data
_embeddings = sampler_runs.embeddings


def _batch(users, positives):
  return base.Batch(users=jnp.asarray(users, jnp.int32),
                    positives=jnp.asarray(positives, jnp.int32),
                    mask=jnp.ones(len(users), jnp.float32))


def _planted(history, epoch):
  """User 0 (positive item 0, score 0); items 2 and 3 score 1, item 4 scores 0.5."""
  state = {"cand": jnp.array([[2, 3, 4, 5]], jnp.int32),
           "history": jnp.asarray(history, jnp.float32)[:, None, :],
           "filled": jnp.full((4,), len(history), jnp.int32),
           "mem": jnp.array([[0, 1, 2]], jnp.int32),
           "epoch": jnp.int32(epoch)}
  embeddings = _embeddings([[1.0, 0.0]], [[0, 0], [0, 1], [1, 0], [1, 0], [0.5, 0], [0, 0]])
  return state, embeddings, _data([(0, 0)], 1)


def _pick(sampler, state, embeddings, data):
  negatives, _ = jax.jit(sampler.negatives)(state, jax.random.PRNGKey(0), _batch([0], [0]),
                                   embeddings, data, HPARAMS)
  return int(negatives.items[0, 0])


def test_equal_scores_pick_the_higher_stored_variability():
  # Positions 0 and 1 (items 2 and 3) score the same now; position 1 varied.
  history = [[0.5, 0.2, 0.6, 0.5], [0.5, 0.8, 0.6, 0.5], [0.5, 0.5, 0.6, 0.5]]
  state, embeddings, data = _planted(history, epoch=10)
  sampler = srns.SRNS(num_items=6, num_candidates=4, memory=3, fresh=2, alpha=1.0,
                      warmup_epochs=5, history=3)
  np.testing.assert_allclose(sampler.variability(state, jnp.array([0]), state["mem"][0:1]),
                             [[0.0, np.std([0.2, 0.8, 0.5]), 0.0]], rtol=1e-6)
  assert _pick(sampler, state, embeddings, data) == 3
  # Reversed variabilities: item 2 wins.
  state["history"] = state["history"][:, :, [1, 0, 2, 3]]
  assert _pick(sampler, state, embeddings, data) == 2


def test_alpha_zero_or_warm_up_start_is_the_hardness_argmax():
  # Item 4 (position 2) scores lower than item 2 but varies a lot.
  history = [[0.5, 0.5, 0.0, 0.5], [0.5, 0.5, 1.0, 0.5]]
  state, embeddings, data = _planted(history, epoch=10)
  make = lambda alpha, warmup: srns.SRNS(num_items=6, num_candidates=4, memory=3, fresh=2,
                                         alpha=alpha, warmup_epochs=warmup, history=2)
  assert _pick(make(5.0, 5), state, embeddings, data) == 4  # 0.62 + 5 * 0.5 wins
  assert _pick(make(0.0, 5), state, embeddings, data) == 2
  # At epoch 0 the warm-up weight min(1, t / T_warm) is 0; halfway it is 1/2.
  assert _pick(make(5.0, 50), dict(state, epoch=jnp.int32(0)), embeddings, data) == 2
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  assert 5.0 * (5 / 50) * 0.5 > sigmoid(1.0) - sigmoid(0.5)  # alpha * ramp * std wins
  assert _pick(make(5.0, 50), dict(state, epoch=jnp.int32(5)), embeddings, data) == 4


def _random_problem(num_users=6, num_items=24, seed=0, dim=4):
  rng = np.random.default_rng(seed)
  pairs = np.array([(u, i) for u in range(num_users)
                    for i in rng.choice(num_items, rng.integers(1, 8), replace=False)])
  embeddings = _embeddings(rng.normal(size=(num_users, dim)),
                           rng.normal(size=(num_items, dim)))
  return pairs, embeddings, rng


def test_with_alpha_zero_every_pick_is_the_best_scoring_memory_item():
  pairs, embeddings, _ = _random_problem(seed=1)
  data = _data(pairs, 6)
  sampler = srns.SRNS(num_items=24, num_candidates=10, memory=4, fresh=3, alpha=0.0,
                      history=2)
  state = jax.jit(sampler.refresh)(sampler.init(jax.random.PRNGKey(0), data),
                                   jax.random.PRNGKey(1), embeddings, data, jnp.int32(0))
  batch = _batch(pairs[:, 0], pairs[:, 1])
  negatives, _ = jax.jit(sampler.negatives)(state, jax.random.PRNGKey(2), batch, embeddings, data,
                                   HPARAMS)
  mem_items = np.take_along_axis(np.asarray(state["cand"])[pairs[:, 0]],
                                 np.asarray(state["mem"])[pairs[:, 0]], axis=1)
  scores = np.einsum("bf,bsf->bs", np.asarray(embeddings.user)[pairs[:, 0]],
                     np.asarray(embeddings.item)[mem_items])
  expected = mem_items[np.arange(len(pairs)), scores.argmax(1)]
  np.testing.assert_array_equal(np.asarray(negatives.items)[:, 0], expected)


def test_refresh_stores_snapshots_and_redraws_one_block_per_epoch():
  pairs, first, rng = _random_problem(seed=2)
  second = _embeddings(rng.normal(size=(6, 4)), rng.normal(size=(24, 4)))
  data = _data(pairs, 6)
  sampler = srns.SRNS(num_items=24, num_candidates=7, memory=2, fresh=2, history=2)
  refresh = jax.jit(sampler.refresh)
  state0 = refresh(sampler.init(jax.random.PRNGKey(0), data), jax.random.PRNGKey(1),
                   first, data, jnp.int32(0))
  state1 = refresh(state0, jax.random.PRNGKey(2), second, data, jnp.int32(1))

  def snapshot(embeddings, cand):
    user, item = np.asarray(embeddings.user), np.asarray(embeddings.item)
    mean_pos = np.array([np.mean([user[u] @ item[i] for uu, i in pairs if uu == u])
                         for u in range(6)])
    scores = np.einsum("uf,ucf->uc", user, item[cand])
    return 1 / (1 + np.exp(-(scores - mean_pos[:, None])))

  cand0, cand1 = np.asarray(state0["cand"]), np.asarray(state1["cand"])
  np.testing.assert_allclose(state0["history"][0], snapshot(first, cand0), rtol=1e-5)
  np.testing.assert_allclose(state1["history"][1], snapshot(second, cand1), rtol=1e-5)
  block1 = np.arange(7) % 2 == 1
  np.testing.assert_array_equal(cand1[:, ~block1], cand0[:, ~block1])  # block 0 kept
  assert (cand1[:, block1] != cand0[:, block1]).any()  # block 1 redrawn
  np.testing.assert_array_equal(state1["filled"], np.where(block1, 1, 2))
  assert int(state1["epoch"]) == 1
  positives = {(int(u), int(i)) for u, i in pairs}
  assert not any((u, int(i)) in positives for u in range(6) for i in cand1[u])
  # Variability: std of the two snapshots for block 0, 0 for the fresh block 1.
  users = jnp.repeat(jnp.arange(6), 7)
  positions = jnp.tile(jnp.arange(7), 6)[:, None]
  var = np.asarray(jax.jit(sampler.variability)(state1, users, positions)).reshape(6, 7)
  expected = np.abs(np.asarray(state1["history"][1]) - np.asarray(state0["history"][0])) / 2
  np.testing.assert_allclose(var[:, ~block1], expected[:, ~block1], rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(var[:, block1], 0.0)


def test_memory_update_keeps_distinct_slots_drawn_by_softmax_of_score_over_tau():
  # Positions 0..3 with a repeat of position 1 and an excluded position 3.
  positions = jnp.array([0, 1, 1, 2, 3])
  scores = jnp.array([1.0, 2.0, 2.0, 0.5, 3.0])
  allowed = jnp.array([True, True, True, True, False])
  draws = 20_000
  update = jax.vmap(lambda k: srns.memory_update(
      k, positions=positions[None], scores=scores[None], allowed=allowed[None], tau=2.0,
      size=2)[0])
  memories = np.asarray(update(jax.random.split(jax.random.PRNGKey(0), draws)))
  assert np.all(memories[:, 0] != memories[:, 1])
  assert not np.any(memories == 3)
  target = np.exp(np.array([1.0, 2.0, 0.5]) / 2.0)
  target /= target.sum()
  freq = np.bincount(memories[:, 0], minlength=3)[:3] / draws
  sigma = np.sqrt(target * (1 - target) / draws)
  assert np.all(np.abs(freq - target) <= 5 * sigma), (freq, target)


def test_a_repeated_user_keeps_the_memory_of_its_last_unmasked_row():
  users = jnp.array([0, 1, 0, 2, 2])
  mask = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
  np.testing.assert_array_equal(srns.last_row_per_user(users, mask, 5), [5, 1, 0, 2, 5])


def test_no_training_positive_or_excluded_item_is_ever_a_negative():
  pairs, embeddings, rng = _random_problem(num_users=8, num_items=20, seed=3)
  data = _data(pairs, 8)
  # A later stage excludes more (revealed false negatives) than the candidates knew.
  extra = np.array([(u, i) for u in range(8) for i in rng.choice(20, 3, replace=False)])
  later = _data(pairs, 8, exclude=np.concatenate([pairs, extra]))
  train_set = {(int(u), int(i)) for u, i in pairs}
  excluded = train_set | {(int(u), int(i)) for u, i in extra}
  sampler = srns.SRNS(num_items=20, num_candidates=6, memory=3, fresh=4, alpha=5.0,
                      warmup_epochs=1, history=2)
  state = sampler.init(jax.random.PRNGKey(0), data)
  batch = _batch(pairs[:, 0], pairs[:, 1])
  refresh, negatives_of = jax.jit(sampler.refresh), jax.jit(sampler.negatives)
  for epoch in range(3):
    stage = data if epoch < 2 else later
    state = refresh(state, jax.random.PRNGKey(10 + epoch), embeddings, stage,
                            jnp.int32(epoch))
    for step in range(3):
      negatives, state = negatives_of(state, jax.random.PRNGKey(step), batch,
                                           embeddings, stage, HPARAMS)
      for u, row in zip(pairs[:, 0], np.asarray(negatives.items)):
        bad = excluded if epoch == 2 else train_set
        assert not any((int(u), int(i)) in bad for i in row), (epoch, u, row)
      mem = np.asarray(state["mem"])
      assert all(len(set(row)) == 3 for row in mem)
  assert state["mem"].dtype == jnp.int32


@pytest.mark.parametrize("field,value", [("memory", 0), ("fresh", 0), ("tau", 0.0),
                                         ("alpha", -1.0), ("warmup_epochs", -1),
                                         ("history", 1), ("num_candidates", 4),
                                         ("history_dtype", "float16")])
def test_bad_knobs_are_rejected(field, value):
  config = _config()
  config.srns[field] = value
  with pytest.raises(ConfigError, match=f"^config.srns.{field}:"):
    program_lib.check_config(config)


def _config(**overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.model, c.sampler, c.tensorboard = "mf", "srns", False
  c.srns.warmup_epochs = 2  # the variability term acts within the short runs
  for name, value in overrides.items():
    c[name] = value
  return c


def test_runs_are_finite_deterministic_resumable_and_replicas_match(tmp_path):
  sampler_runs.check_finite_resumable_and_replicas(_config, tmp_path)
