"""pdns_jax/experiments/grid.py and the override path of pdns_jax/config.py (no training)."""

import pytest

from configs import synthetic
from pdns_jax import config as config_lib
from pdns_jax.config import ConfigError
from pdns_jax.experiments import grid


def _smoke(**overrides):
  return config_lib.with_overrides(synthetic.get_config("smoke"), overrides.items())


def test_overrides_are_typed_like_the_command_line():
  config = _smoke()
  changed = config_lib.with_overrides(config, [
      ("pool_size", "8"), ("beta", 1), ("progress", "true"), ("synthetic.num_users", "30"),
      ("sampler", "dns"), ("topk", "10,20"), ("learning_rate", "1e-3")])
  assert (changed.pool_size, changed.beta, changed.progress) == (8, 1.0, True)
  assert isinstance(changed.beta, float)  # ConfigDict's typed assignment
  assert (changed.synthetic.num_users, changed.sampler, changed.topk) == (30, "dns", (10, 20))
  assert changed.learning_rate == 0.001 and changed.is_locked
  assert config.pool_size == 16  # the base config is not modified


@pytest.mark.parametrize("field,value,message", [
    ("lerning_rate", "0.1", "config.lerning_rate: no such config field"),
    ("synthetic.num_usrs", "3", "config.synthetic.num_usrs: no such config field"),
    ("pool_size", "many", "config.pool_size: 'many' is not a valid int"),
    ("pool_size", 2.5, "config.pool_size: 2.5 is not a valid int"),
    ("progress", "maybe", "config.progress: 'maybe' is not a valid bool"),
    ("sampler", 3, "config.sampler: 3 is not a valid str")])
def test_overrides_reject_unknown_fields_and_bad_values(field, value, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.with_overrides(_smoke(), [(field, value)])


def test_parse_grid_types_values_by_field():
  assert grid.parse_grid("beta=0.05,0.1, 0.2; pool_size=16,32;sampler=dns", _smoke()) == [
      ("beta", [0.05, 0.1, 0.2]), ("pool_size", [16, 32]), ("sampler", ["dns"])]
  assert grid.parse_grid("", _smoke()) == []


@pytest.mark.parametrize("text,message", [
    ("beta", "--grid: 'beta' is not 'field=v1,v2"), ("beta=", "not 'field=v1,v2"),
    ("seed=0,1", "--seeds"), ("beta=0.1;beta=0.2", "twice"),
    ("num_replicas=2", "set by the sweep"), ("replica_sweep=x", "set by the sweep"),
    ("bta=1", "config.bta: no such config field"),
    ("pool_size=8,x", "config.pool_size: 'x' is not a valid int")])
def test_parse_grid_rejects(text, message):
  with pytest.raises(ConfigError, match=message):
    grid.parse_grid(text, _smoke())


def test_plan_groups_replica_fields_into_vmapped_runs():
  config = _smoke()
  axes = grid.parse_grid("beta=0.05,0.1;pool_size=16,32;l2=0,0.01", config)
  runs = grid.plan_runs(config, axes, seeds=3)
  assert [r.name for r in runs] == ["pool_size=16,beta=0.05+0.1,l2=0+0.01,seeds=0-2",
                                    "pool_size=32,beta=0.05+0.1,l2=0+0.01,seeds=0-2"]
  for run in runs:
    run_config = run.config(config)
    trainer_order = config_lib.replica_settings(run_config)
    assert len(run.settings) == len(trainer_order) == 12
    for mine, theirs in zip(run.settings, trainer_order):
      assert list(mine) == ["beta", "pool_size", "l2", "seed"]  # grid order
      assert (mine["beta"], mine["l2"], mine["seed"]) == (
          theirs["beta"], theirs["l2"], theirs["seed"])
      assert mine["pool_size"] == run_config.pool_size


def test_plan_without_vmap_runs_each_point_and_seed():
  config = _smoke(seed=7)
  axes = grid.parse_grid("beta=0.05,0.1;pool_size=4", config)
  runs = grid.plan_runs(config, axes, seeds=2, vmap="no")
  assert [r.name for r in runs] == [
      "pool_size=4,beta=0.05,seed=7", "pool_size=4,beta=0.05,seed=8",
      "pool_size=4,beta=0.1,seed=7", "pool_size=4,beta=0.1,seed=8"]
  assert [r.config(config).seed for r in runs] == [7, 8, 7, 8]
  assert all(r.config(config).num_replicas == 1 for r in runs)


def test_plan_does_not_vmap_automatic_reveals():
  config = _smoke(reveal_fraction=0.4, reveal_start=-1)
  axes = [("beta", [0.1])]
  assert len(grid.plan_runs(config, axes, seeds=2, vmap="auto")) == 2
  with pytest.raises(ConfigError, match="reveal_start"):
    grid.plan_runs(config, axes, seeds=2, vmap="yes")
  explicit = _smoke(reveal_fraction=0.4, reveal_start=2)
  assert len(grid.plan_runs(explicit, axes, seeds=2, vmap="auto")) == 1


@pytest.mark.parametrize("config,seeds,vmap,message", [
    (dict(num_replicas=2), 1, "auto", "--seeds and --grid"),
    ({}, 0, "auto", "--seeds: must be >= 1"), ({}, 1, "maybe", "--vmap")])
def test_plan_rejects(config, seeds, vmap, message):
  with pytest.raises(ConfigError, match=message):
    grid.plan_runs(_smoke(**config), [], seeds=seeds, vmap=vmap)
