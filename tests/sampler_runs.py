"""The end-to-end checks every sampler's test module runs (imported by them).

Finite metrics; a run stopped and resumed equals an uninterrupted one (so the
sampler state is checkpointed and restored); replica r of a two-replica run
equals the single run with seed r (so the state is vmapped per replica).
"""

import numpy as np
import pytest

from pdns_jax import train

METRIC_KEYS = ("best_epoch", "valid/recall@50", "test/recall@50", "test/ndcg@50")


def metrics(summary):
  return {k: summary[k] for k in METRIC_KEYS}


def check_finite_resumable_and_replicas(config, tmp_path):
  """Runs the checks with `config(**overrides)` building a locked-or-not config."""
  part = train.train_and_evaluate(config(num_epochs=2), tmp_path / "resumed")
  for key in METRIC_KEYS[1:]:
    assert np.isfinite(part[key]) and 0 <= part[key] <= 1
  resumed = train.train_and_evaluate(config(num_epochs=3), tmp_path / "resumed")
  straight = train.train_and_evaluate(config(num_epochs=3), tmp_path / "straight")
  assert metrics(resumed) == metrics(straight)
  many = train.train_and_evaluate(config(num_epochs=2, num_replicas=2), tmp_path / "many")
  single = train.train_and_evaluate(config(num_epochs=2, seed=1), tmp_path / "single")
  replica = lambda r: {k: many["replicas"][r][k] for k in METRIC_KEYS}
  assert replica(0) == pytest.approx(metrics(part), abs=1e-6)  # same seed, same run
  assert replica(1) == pytest.approx(metrics(single), abs=1e-6)


def train_data(pairs, num_users, exclude=None):
  """TrainData of (user, item) pairs, excluding `exclude` (default: the pairs)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from pdns_jax.samplers import base, pools  # pylint: disable=g-import-not-at-top
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  exclude = pairs if exclude is None else np.asarray(exclude, np.int64)
  return base.TrainData(users=jnp.asarray(pairs[:, 0], jnp.int32),
                        items=jnp.asarray(pairs[:, 1], jnp.int32),
                        exclude=pools.sorted_sets(exclude, num_users),
                        false_negatives=pools.sorted_sets(np.zeros((0, 2)), num_users))


def embeddings(user, item):
  """MF-shaped Embeddings (one layer) of the given user and item tables."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from pdns_jax.samplers import base  # pylint: disable=g-import-not-at-top
  return base.Embeddings.of(jnp.asarray(user, jnp.float32)[None],
                            jnp.asarray(item, jnp.float32)[None])
