"""AdaSIR(U) / AdaSIR(P): SIR frequencies, popularity proposals, step weights, pools, runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import losses
from pdns_jax import program as program_lib
from pdns_jax import train
from pdns_jax.config import ConfigError
from pdns_jax.samplers import adasir
from pdns_jax.samplers import base
import sampler_runs

METRIC_KEYS = ("best_epoch", "valid/recall@50", "test/recall@20", "test/ndcg@20",
               "test/recall@50", "test/ndcg@50")


_data = sampler_runs.train_data
_embeddings = sampler_runs.embeddings


def _within_5_sigma(freq, p, n):
  sigma = np.sqrt(p * (1 - p) / n)
  assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-9), (freq, p)


def test_resampling_frequencies_match_softmax_of_score_minus_log_q():
  # Planted proposals (with repeats), scores and ln q; one excluded proposal.
  scores = jnp.array([0.5, -1.0, 2.0, 0.0, 1.0, 3.0])
  log_q = jnp.log(jnp.array([0.1, 0.3, 0.2, 0.1, 0.2, 0.1]))
  excluded = jnp.array([False, False, False, False, False, True])
  logits = adasir.resampling_logits(scores=scores, log_q=log_q, excluded=excluded)
  draws = 200_000
  picks, w = adasir.resample(jax.random.PRNGKey(0), logits=logits, size=draws)
  target = np.exp(np.asarray(scores - log_q))
  target[5] = 0.0
  target /= target.sum()
  freq = np.bincount(np.asarray(picks), minlength=6) / draws
  _within_5_sigma(freq, target, draws)
  assert freq[5] == 0.0
  np.testing.assert_allclose(np.asarray(w), target[np.asarray(picks)], rtol=1e-5)


@pytest.mark.parametrize("popularity", [False, True])
def test_refresh_new_slots_follow_the_score_distribution_over_non_positives(popularity):
  # Identical users (same positives, same embedding), each with its own keys:
  # for M proposals the new slots approach exp(s_j) / Z over the non-positives
  # reachable under q (SIR's defining property), whatever q is.
  num_users, num_items, pool, proposals = 1000, 8, 50, 400
  pairs = [(u, i) for u in range(num_users) for i in (1, 4)]
  pairs += [(0, i) for i in range(num_items)]  # user 0: every item has count > 0
  data = _data(pairs, num_users + 1)
  item_scores = np.array([0.0, 3.0, 1.0, -0.5, 3.0, 0.5, 1.5, -1.0], np.float32)
  embeddings = _embeddings(np.ones((num_users + 1, 1)), item_scores[:, None])
  sampler = adasir.AdaSIR(num_items=num_items, pool=pool, proposals=proposals, samples=3,
                          popularity=popularity)
  state = sampler.init(jax.random.PRNGKey(0), data)
  state = jax.jit(sampler.refresh)(state, jax.random.PRNGKey(1), embeddings, data, 0)
  slots = np.asarray(state["pool"])[1:num_users]  # users 1.. (user 0 has no negatives)
  per_user = np.stack([np.bincount(row, minlength=num_items) / pool for row in slots])
  target = np.exp(item_scores)
  target[[1, 4]] = 0.0
  target /= target.sum()
  mean = per_user.mean(0)
  stderr = per_user.std(0) / np.sqrt(len(per_user))
  assert np.all(np.abs(mean - target) <= 5 * stderr + 1e-3), (mean, target)
  assert per_user[:, [1, 4]].sum() == 0


def test_popularity_proposals_follow_log_one_plus_count():
  # 11 items: blocks of 4 with zero-count items inside, at a block edge and at the end.
  counts = np.array([5, 0, 1, 100, 0, 0, 0, 0, 2, 30, 0])
  table = adasir.popularity_table(jnp.asarray(counts))
  draws = 300_000
  items, log_q = jax.jit(adasir.popularity_proposals, static_argnames="num")(
      jax.random.PRNGKey(3), table=table, num=draws)
  q = np.log1p(counts) / np.log1p(counts).sum()
  freq = np.bincount(np.asarray(items), minlength=len(counts)) / draws
  _within_5_sigma(freq, q, draws)
  assert freq[counts == 0].sum() == 0
  np.testing.assert_allclose(np.asarray(log_q), np.log(q[np.asarray(items)]), rtol=1e-5)


def test_step_weights_match_a_numpy_reference():
  # Two users with distinct pool items, so item -> stored w is a function.
  pool = jnp.array([[2, 3, 4], [0, 4, 5]], jnp.int32)
  pool_w = jnp.array([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]], jnp.float32)
  state = {"pool": pool, "pool_w": pool_w, "filled": jnp.ones((), jnp.bool_)}
  rng = np.random.default_rng(0)
  user_e, item_e = rng.normal(size=(2, 3)), rng.normal(size=(6, 3))
  embeddings = _embeddings(user_e, item_e)
  sampler = adasir.AdaSIR(num_items=6, pool=3, proposals=3, samples=4)
  batch = base.Batch(users=jnp.array([0, 1, 1]), positives=jnp.array([0, 1, 2]),
                     mask=jnp.ones(3))
  data = _data([(0, 0), (1, 1), (1, 2)], 2)
  negatives, same = sampler.negatives(state, jax.random.PRNGKey(5), batch, embeddings, data,
                                      {})
  assert same is state
  items = np.asarray(negatives.items)
  assert items.shape == (3, 4)
  w_of = [dict(zip(np.asarray(pool[u]).tolist(), np.asarray(pool_w[u]).tolist()))
          for u in range(2)]
  users, positives = np.array([0, 1, 1]), np.array([0, 1, 2])
  for b in range(3):
    u = users[b]
    assert set(items[b]) <= set(np.asarray(pool[u]).tolist())
    s_uj = item_e[items[b]] @ user_e[u]
    s_ui = item_e[positives[b]] @ user_e[u]
    logits = s_uj - s_ui + np.log([w_of[u][j] for j in items[b]])
    omega = np.exp(logits - logits.max())
    omega /= omega.sum()
    np.testing.assert_allclose(np.asarray(negatives.weights[b]), omega, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(negatives.embeddings[b]), item_e[items[b]],
                               rtol=1e-6)
    # The step's weighted BPR is sum_k omega_k * softplus(s_uj_k - s_ui).
    loss = losses.bpr(pos_scores=jnp.array([s_ui]), neg_scores=jnp.asarray(s_uj)[None],
                      mask=jnp.ones(1), weights=jnp.asarray(omega)[None])
    np.testing.assert_allclose(float(loss), np.sum(omega * np.log1p(np.exp(s_uj - s_ui))),
                               rtol=1e-5)

  # omega carries no gradient to the model.
  def total_weight(item):
    e = base.Embeddings.of(jnp.asarray(user_e, jnp.float32)[None], item[None])
    return jnp.sum(sampler.negatives(state, jax.random.PRNGKey(5), batch, e, data,
                                     {})[0].weights * jnp.arange(4.0))
  np.testing.assert_array_equal(jax.grad(total_weight)(jnp.asarray(item_e, jnp.float32)), 0)


def test_merge_copies_uniform_slots_with_their_weights():
  size = 20_000
  old, new = jnp.zeros(size, jnp.int32), jnp.ones(size, jnp.int32)
  merged, merged_w = adasir.merge_pools(jax.random.PRNGKey(2), old=old,
                                        old_w=jnp.full(size, 0.25), new=new,
                                        new_w=jnp.full(size, 0.75))
  merged, merged_w = np.asarray(merged), np.asarray(merged_w)
  np.testing.assert_allclose(merged_w, np.where(merged == 1, 0.75, 0.25))
  _within_5_sigma(merged.mean(), 0.5, size)


def test_first_refresh_replaces_the_pool_and_later_ones_merge():
  num_users, num_items, pool = 4, 30, 400
  data = _data([(u, u) for u in range(num_users)], num_users)
  rng = np.random.default_rng(1)
  embeddings = _embeddings(rng.normal(size=(num_users, 2)), rng.normal(size=(num_items, 2)))
  sampler = adasir.AdaSIR(num_items=num_items, pool=pool, proposals=500, samples=2)
  refresh = jax.jit(sampler.refresh)
  state = sampler.init(jax.random.PRNGKey(0), data)
  marked = dict(state, pool_w=jnp.full_like(state["pool_w"], 7.0))  # impossible w
  first = refresh(marked, jax.random.PRNGKey(1), embeddings, data, 0)
  assert bool(first["filled"]) and np.all(np.asarray(first["pool_w"]) <= 1.0)
  second = refresh(dict(first, pool_w=jnp.full_like(first["pool_w"], 7.0)),
                   jax.random.PRNGKey(2), embeddings, data, 1)
  kept = float(np.mean(np.asarray(second["pool_w"]) == 7.0))
  _within_5_sigma(kept, 0.5, num_users * pool)


def test_refresh_does_not_depend_on_the_user_chunking(monkeypatch):
  num_users, num_items = 7, 12
  pairs = [(u, (3 * u) % num_items) for u in range(num_users)]
  data = _data(pairs, num_users)
  rng = np.random.default_rng(2)
  embeddings = _embeddings(rng.normal(size=(num_users, 2)), rng.normal(size=(num_items, 2)))
  sampler = adasir.AdaSIR(num_items=num_items, pool=5, proposals=8, samples=2,
                          popularity=True)
  state = sampler.init(jax.random.PRNGKey(0), data)
  whole = jax.jit(sampler.refresh)(state, jax.random.PRNGKey(1), embeddings, data, 0)
  monkeypatch.setattr(adasir, "_REFRESH_BUDGET", 3 * 8 * 2)  # chunks of 3 users, 1 padded
  chunked = jax.jit(sampler.refresh)(state, jax.random.PRNGKey(1), embeddings, data, 0)
  for name in whole:
    np.testing.assert_array_equal(whole[name], chunked[name])


@pytest.mark.parametrize("popularity", [False, True])
def test_no_training_positive_is_ever_a_negative(popularity):
  # Items 0-3 are positives of most users (the most popular); user 0 holds every
  # item with a count, so all its popularity proposals are positives (fallback).
  num_users, num_items = 6, 9
  pairs = [(u, i) for u in range(1, 5) for i in range(4)] + [(5, 4), (5, 8)]
  pairs += [(0, i) for i in (0, 1, 2, 3, 4, 8)]
  rng = np.random.default_rng(3)
  pairs += [(int(u), int(i)) for u, i in zip(rng.integers(1, 5, 6), rng.integers(4, 9, 6))]
  pairs = sorted(set(pairs))
  data = _data(pairs, num_users)
  positives = {(u, i) for u, i in pairs}
  sampler = adasir.AdaSIR(num_items=num_items, pool=6, proposals=10, samples=4,
                          popularity=popularity)
  refresh, negatives = jax.jit(sampler.refresh), jax.jit(sampler.negatives)
  state = sampler.init(jax.random.PRNGKey(0), data)
  batch = base.Batch(users=jnp.asarray([u for u, _ in pairs]),
                     positives=jnp.asarray([i for _, i in pairs]), mask=jnp.ones(len(pairs)))
  for epoch in range(4):
    # Popular positives score highest, so the masking must do the work.
    user_e = rng.normal(size=(num_users, 2))
    item_e = rng.normal(size=(num_items, 2))
    item_e[:4] = 5 * user_e.mean(0)
    embeddings = _embeddings(user_e, item_e)
    if epoch:  # the placeholder is checked too
      state = refresh(state, jax.random.PRNGKey(epoch), embeddings, data, epoch)
    for u, row in enumerate(np.asarray(state["pool"])):
      assert not any((u, int(i)) in positives for i in row), (u, row)
    assert np.all(np.isfinite(np.asarray(state["pool_w"])))
    assert np.all(np.asarray(state["pool_w"]) > 0)
    for step in range(3):
      out, state = negatives(state, jax.random.PRNGKey(10 * epoch + step), batch, embeddings,
                             data, {})
      for u, row in zip(np.asarray(batch.users), np.asarray(out.items)):
        assert not any((int(u), int(i)) in positives for i in row), (u, row)
      np.testing.assert_allclose(np.asarray(out.weights).sum(1), 1.0, rtol=1e-5)
  if popularity:  # user 0 fell back to exact uniform proposals over {5, 6, 7}
    assert set(np.asarray(state["pool"][0]).tolist()) <= {5, 6, 7}


def _config(**overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.tensorboard = False
  c.model = "mf"
  c.sampler = "adasir_p"
  for name, value in overrides.items():
    if "." in name:
      block, field = name.split(".")
      c[block][field] = value
    else:
      c[name] = value
  return c.lock()


@pytest.mark.parametrize("field,value", [("pool", 0), ("proposals", 49), ("samples", 0)])
def test_bad_knobs_are_rejected(field, value):
  with pytest.raises(ConfigError, match=rf"^config\.adasir\.{field}:"):
    program_lib.check_config(_config(**{f"adasir.{field}": value}))
  program_lib.check_config(_config(**{"adasir.proposals": 50}))  # proposals == pool is fine


def test_end_to_end_resumes_and_a_replica_equals_its_single_run(tmp_path):
  # One seed-1 run trained 2 epochs, then resumed to 4, equals replica 1 of an
  # uninterrupted 4-epoch run with 2 replicas (seeds 0, 1): the pools are
  # checkpointed and restored, each replica gets its own state, and the same
  # seed gives the same summary (three runs prove the three properties).
  config = lambda **kw: _config(patience=100, **kw)
  first = train.train_and_evaluate(config(seed=1, num_epochs=2), tmp_path / "resumed")
  assert all(np.isfinite(first[k]) for k in METRIC_KEYS)
  resumed = train.train_and_evaluate(config(seed=1, num_epochs=4), tmp_path / "resumed")
  many = train.train_and_evaluate(config(num_replicas=2, num_epochs=4), tmp_path / "many")
  replica = many["replicas"][1]
  assert replica["hparams"]["seed"] == 1 and resumed["epochs_run"] == 4
  assert replica["best_epoch"] == resumed["best_epoch"]
  for key in METRIC_KEYS[1:]:
    assert np.isfinite(resumed[key]) and 0.0 <= resumed[key] <= 1.0
    assert replica[key] == pytest.approx(resumed[key], abs=1e-5), key


def test_end_to_end_uniform_proposals_train(tmp_path):
  summary = train.train_and_evaluate(_config(sampler="adasir_u", num_epochs=2), tmp_path)
  assert all(np.isfinite(summary[k]) for k in METRIC_KEYS)
  assert 0.0 < summary["test/recall@50"] <= 1.0
