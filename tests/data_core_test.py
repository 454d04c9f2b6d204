"""The paper's splits (PAPER.md 5) and the split cache."""

import numpy as np
import pytest

from configs import synthetic as synthetic_config
from pdns_jax import data as data_lib
from pdns_jax.data import core


def _interactions(per_user, timestamps=True, is_test=None):
  users = np.repeat(np.arange(len(per_user)), per_user)
  items = np.concatenate([np.arange(n) for n in per_user])
  times = np.concatenate([1000 - 7 * np.arange(n) for n in per_user]) if timestamps else None
  return core.Interactions(users=users, items=items, timestamps=times,
                           num_users=len(per_user), num_items=max(per_user) + 1,
                           name="toy", source="test", is_test=is_test)


def _items_of(pairs, user):
  return sorted(pairs[pairs[:, 0] == user, 1].tolist())


def test_temporal_split_takes_the_latest_ten_percent_then_eight_to_one():
  # User 0 has 20 items whose time decreases with the item id: items 0, 1
  # are the latest (test), 2, 3 next (valid: round(18 / 9) = 2), rest train.
  split = core.make_split(_interactions([20, 10]), "paper")
  assert _items_of(split.test, 0) == [0, 1]
  assert _items_of(split.valid, 0) == [2, 3]
  assert _items_of(split.train, 0) == list(range(4, 20))
  assert _items_of(split.test, 1) == [0]
  assert _items_of(split.valid, 1) == [1]
  assert len(split.fn) == 0
  assert "temporal" in split.description


def test_split_parts_are_disjoint_and_cover_everything():
  rng = np.random.default_rng(0)
  per_user = rng.integers(1, 40, size=50).tolist()
  for kind, stamps in (("paper", True), ("paper", False), ("fn", False)):
    data = _interactions(per_user, timestamps=stamps)
    split = core.make_split(data, kind, seed=3)
    parts = [split.train, split.valid, split.test, split.fn]
    keys = np.concatenate([p[:, 0] * 1000 + p[:, 1] for p in parts])
    assert len(keys) == data.num_interactions == len(set(keys.tolist())), kind


def test_random_split_without_timestamps_is_seeded():
  data = _interactions([30] * 10, timestamps=False)
  a = core.make_split(data, "paper", seed=1)
  b = core.make_split(data, "paper", seed=1)
  c = core.make_split(data, "paper", seed=2)
  np.testing.assert_array_equal(a.test, b.test)
  assert not np.array_equal(a.test, c.test)
  assert "random" in a.description
  assert len(a.test) == 30 and len(a.valid) == 30  # 3 and round(27/9) = 3 per user


def test_fn_split_is_four_one_one_with_valid_carved_from_train():
  split = core.make_split(_interactions([36] * 5, timestamps=False), "fn", seed=0)
  # Per user: 6 test, 6 FN, 24 left: round(24 / 9) = 3 valid, 21 train.
  assert split.counts() == {"train": 105, "valid": 15, "test": 30, "fn": 30}


def test_predefined_test_split_is_kept():
  data = _interactions([10, 10], timestamps=False)
  is_test = data.items >= 8
  split = core.make_split(core.Interactions(**{**data.__dict__, "is_test": is_test}), "paper")
  assert _items_of(split.test, 0) == [8, 9]
  assert "own test split" in split.description


def test_user_who_has_every_item_is_rejected():
  with pytest.raises(core.DataError, match="user 0 interacted with every item"):
    core.check_split(core.Split(2, 2, np.array([[0, 0], [0, 1], [1, 0]]),
                                *(np.zeros((0, 2), np.int32),) * 3, "toy", ""))


def test_split_cache_is_written_atomically_and_reused(tmp_path, monkeypatch):
  monkeypatch.setenv("PDNS_CACHE_DIR", str(tmp_path))
  config = synthetic_config.get_config("smoke")
  first = data_lib.load_split(config)
  files = list(tmp_path.iterdir())
  assert len(files) == 1 and files[0].suffix == ".npz"
  assert not list(tmp_path.glob(".*tmp"))
  second = data_lib.load_split(config)
  np.testing.assert_array_equal(first.train, second.train)
  # A corrupt cache file is rebuilt, not trusted.
  files[0].write_bytes(b"garbage")
  third = data_lib.load_split(config)
  np.testing.assert_array_equal(first.train, third.train)


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
  target = tmp_path / "out.npz"
  def broken(f):
    f.write(b"partial")
    raise RuntimeError("disk full")
  with pytest.raises(RuntimeError):
    core.atomic_write(target, broken)
  assert list(tmp_path.iterdir()) == []


def test_synthetic_generator_plants_low_rank_preferences():
  config = synthetic_config.get_config("smoke")
  data = data_lib.load_interactions(config)
  assert data.num_users == 60 and data.num_items == 120
  degree = np.bincount(data.users, minlength=60)
  assert degree.min() >= 6
  assert len(set(zip(data.users.tolist(), data.items.tolist()))) == data.num_interactions
