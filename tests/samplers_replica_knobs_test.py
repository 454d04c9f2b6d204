"""Samplers' float knobs as replica axes: `config.replica_sweep="srns.alpha=0,5"`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import config as config_lib
from pdns_jax import program as program_lib
from pdns_jax import train
from pdns_jax.config import ConfigError
from pdns_jax.experiments import grid
from pdns_jax.samplers import base
from pdns_jax.samplers import srns
import sampler_runs

METRIC_KEYS = ("best_epoch", "valid/recall@50", "test/recall@50", "test/ndcg@50")


def _config(sampler, **overrides):
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.model, c.sampler, c.tensorboard, c.progress = "mf", sampler, False, False
  c.srns.warmup_epochs = 1  # the variability term acts from the second epoch
  return config_lib.with_overrides(c, overrides.items())


@pytest.mark.parametrize("sampler,knob,values,epochs", [
    ("srns", "srns.alpha", (0.0, 50.0), 2),
    # The gain is rank-normalised, so the decay shows from the third refresh on.
    ("gdns", "gdns.decay", (0.0, 0.9), 3)])
def test_each_replica_of_a_knob_sweep_equals_its_single_run(tmp_path, sampler, knob, values,
                                                            epochs):
  sweep = f"{knob}={values[0]},{values[1]}"
  many = train.train_and_evaluate(_config(sampler, num_epochs=epochs, replica_sweep=sweep),
                                  tmp_path / "many")
  for r, value in enumerate(values):
    replica = many["replicas"][r]
    assert replica["hparams"][knob] == value
    single = train.train_and_evaluate(_config(sampler, num_epochs=epochs, **{knob: value}),
                                      tmp_path / f"single{r}")
    for key in METRIC_KEYS:
      assert replica[key] == pytest.approx(single[key], abs=1e-6), (value, key)


def test_the_srns_pick_reads_alpha_from_the_replicas_hparams():
  # User 0's memory: item 2 scores 1 and never varied, item 4 scores 0.5 and varied.
  state = {"cand": jnp.array([[2, 4]], jnp.int32),
           "history": jnp.array([[[0.5, 0.1]], [[0.5, 0.9]]], jnp.float32),
           "filled": jnp.array([2, 2], jnp.int32), "mem": jnp.array([[0, 1]], jnp.int32),
           "epoch": jnp.int32(10)}
  embeddings = sampler_runs.embeddings([[1.0, 0.0]], [[0, 0], [0, 1], [1, 0], [0, 0],
                                                      [0.5, 0]])
  data = sampler_runs.train_data([(0, 0)], 1)
  batch = base.Batch(users=jnp.array([0]), positives=jnp.array([0]), mask=jnp.ones(1))
  sampler = srns.SRNS(num_items=5, num_candidates=2, memory=2, fresh=1, alpha=0.0,
                      warmup_epochs=1, history=2)
  pick = jax.jit(lambda alpha: sampler.negatives(state, jax.random.PRNGKey(0), batch,
                                                 embeddings, data, {"srns.alpha": alpha}
                                                 )[0].items[0, 0])
  assert int(pick(0.0)) == 2 and int(pick(5.0)) == 4  # the static alpha (0) is not used
  assert int(jax.vmap(pick)(jnp.array([0.0, 5.0]))[1]) == 4  # per replica, traced


@pytest.mark.parametrize("sweep,message", [
    ("srns.memory=4,8", r"'srns.memory' \(int\) cannot vary between replicas"),
    ("adasir.proposals=100,200", r"'adasir.proposals' \(int\) cannot vary"),
    ("srns.history_dtype=1", r"'srns.history_dtype' \(str\) cannot vary"),
    ("srns.nope=1", r"'srns.nope' is no config field"),
    ("srns.alpha=1,-1", r"config.replica_sweep: config.srns.alpha: must be >= 0"),
    ("gdns.decay=0.5,1", r"config.replica_sweep: config.gdns.decay: a must lie in"),
    ("irgan.temperature=0", r"config.replica_sweep: config.irgan.temperature: must be > 0"),
    ("srns.tau=x", r"srns.tau=x has a non-numeric value")])
def test_a_knob_that_cannot_be_swept_is_refused_naming_it(sweep, message):
  with pytest.raises(ConfigError, match=message):
    program_lib.check_config(_config("srns", replica_sweep=sweep))


def test_the_program_gives_each_replica_its_knob_values():
  config = _config("gdns", num_replicas=2, replica_sweep="gdns.gamma=0.5,2;srns.tau=3")
  settings = config_lib.replica_settings(config)
  assert [(s["gdns.gamma"], s["seed"]) for s in settings] == [(0.5, 0), (0.5, 1), (2.0, 0),
                                                              (2.0, 1)]
  hparams = program_lib.build_program(config).hparams
  np.testing.assert_array_equal(hparams["gdns.gamma"], [0.5, 0.5, 2.0, 2.0])
  np.testing.assert_array_equal(hparams["srns.tau"], [3.0] * 4)
  np.testing.assert_array_equal(hparams["gdns.decay"], np.float32([config.gdns.decay] * 4))


def test_a_grid_over_a_knob_becomes_replicas():
  config = _config("srns")
  axes = grid.parse_grid("srns.alpha=0,1;srns.memory=4,8", config)
  runs = grid.plan_runs(config, axes, seeds=1)
  assert len(runs) == 2  # one per memory size; the alphas are replicas of it
  for run in runs:
    overrides = dict(run.overrides)
    assert overrides["replica_sweep"] == "srns.alpha=0.0,1.0"
    assert [s["srns.alpha"] for s in run.settings] == [0.0, 1.0]
