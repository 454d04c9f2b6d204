"""The paper's splits (PAPER.md 5) and the split cache."""

import logging

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


# Repeated pairs and raw ids: Interactions.from_raw, the one way in.

def test_from_raw_collapses_repeats_keeping_the_latest_in_source_order(caplog):
  caplog.set_level(logging.INFO, logger="absl")
  data = core.Interactions.from_raw(
      [7, 5, 7, 5, 7], [30, 30, 30, 40, 31], [1, 9, 4, 2, 3], name="toy", source="test")
  # (7, 30) twice: the later time (4, row 2) stays, at its own place in the order.
  assert data.user_ids.tolist() == [5, 7] and data.item_ids.tolist() == [30, 31, 40]
  assert list(zip(data.users.tolist(), data.items.tolist(), data.timestamps.tolist())) == [
      (0, 0, 9), (1, 0, 4), (0, 2, 2), (1, 1, 3)]
  assert ("toy: 2 users (raw ids 5..7), 3 items (raw ids 30..40), 4 interactions; "
          "1 repeated (user, item) rows collapsed") in caplog.text


def test_from_raw_prefers_test_rows_then_later_rows():
  data = core.Interactions.from_raw([1, 1, 1, 2, 2], [5, 5, 6, 5, 5], name="toy",
                                    source="test", is_test=[True, False, False, False, False])
  assert list(zip(data.users.tolist(), data.items.tolist(), data.is_test.tolist())) == [
      (0, 0, True), (0, 1, False), (1, 0, False)]


def test_from_raw_accepts_any_integer_ids_and_logs_their_range(caplog):
  caplog.set_level(logging.INFO, logger="absl")
  data = core.Interactions.from_raw([-5, 10**12, -5], [0, 0, 1], name="toy", source="test")
  assert data.num_users == 2 and data.user_ids.tolist() == [-5, 10**12]
  assert "2 users (raw ids -5..1000000000000)" in caplog.text


def test_interactions_reject_repeated_pairs():
  with pytest.raises(core.DataError, match="toy: 1 repeated .* Interactions.from_raw"):
    core.Interactions(users=np.array([0, 0]), items=np.array([1, 1]), timestamps=None,
                      num_users=1, num_items=2, name="toy", source="test")


def test_ids_default_to_their_own_raw_ids():
  data = _interactions([3, 2])
  assert data.user_ids.tolist() == [0, 1] and data.item_ids.tolist() == [0, 1, 2, 3]
  split = core.make_split(data)
  assert split.user_ids.tolist() == [0, 1] and split.item_ids.tolist() == [0, 1, 2, 3]
  with pytest.raises(core.DataError, match="3 raw user ids for 2 users"):
    core.Interactions(**{**data.__dict__, "user_ids": np.arange(3)})


@pytest.mark.parametrize("parts,message", [
    ({"train": [[0, 0], [1, 1]], "test": [[1, 1]]}, r"\(1, 1\) in both train and test"),
    ({"train": [[0, 0]], "valid": [[0, 1]], "fn": [[0, 1]]}, "both valid and fn"),
    ({"train": [[0, 0], [0, 0]]}, "train twice"),
])
def test_split_parts_must_not_share_pairs(parts, message):
  arrays = {p: np.array(parts.get(p, np.zeros((0, 2))), np.int32).reshape(-1, 2)
            for p in core.PARTS}
  with pytest.raises(core.DataError, match=f"^toy: 1 .*pairs repeat.*{message}"):
    core.check_split(core.Split(2, 3, **arrays, name="toy", description=""))


def test_valid_order_random_keeps_test_and_sizes_but_draws_valid_at_random():
  # Two users with times 0..19: test is the latest 10% either way; "time" takes
  # the latest ninth of the rest as validation, "random" a seeded random ninth.
  users = np.repeat(np.arange(2), 20)
  items = np.tile(np.arange(20), 2)
  data = core.Interactions(users=users, items=items, timestamps=np.tile(np.arange(20), 2),
                           num_users=2, num_items=20, name="t", source="test")
  by_time = core.make_split(data, "paper", seed=0)
  at_random = core.make_split(data, "paper", seed=0, valid_order="random")
  np.testing.assert_array_equal(by_time.test, at_random.test)
  assert sorted(by_time.test[:, 1].tolist()) == [18, 18, 19, 19]
  assert len(by_time.valid) == len(at_random.valid) == 4
  assert sorted(by_time.valid[:, 1].tolist()) == [16, 16, 17, 17]  # the latest before test
  assert set(at_random.valid[:, 1].tolist()) != {16, 17}
  assert "at random" in at_random.description
  with pytest.raises(core.DataError, match="config.valid_order"):
    core.make_split(data, "paper", valid_order="sideways")
