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
