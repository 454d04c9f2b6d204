"""The paper's Table 1 and `describe_split`, the lines a run logs about its data."""

import numpy as np

from configs import default
from conftest import SHARED_DATA
from pdns_jax import data as data_lib
from pdns_jax.data import core, reference


def _config(dataset, split="paper"):
  c = default.get_config()
  c.unlock()
  c.dataset, c.data_dir, c.split = dataset, str(SHARED_DATA), split
  return c.lock()


def test_describe_split_sets_counts_beside_the_paper():
  lines = reference.describe_split(data_lib.load_split(_config("gowalla")))
  assert lines[0].startswith("data: gowalla from NGCF/LightGCN Gowalla")
  assert lines[1].startswith("split: the source's own test split kept")
  assert "test 217,242, fn 0" in lines[1]
  assert lines[2] == ("gowalla: 29,858 users / 40,981 items / 1,027,370 interactions "
                      "(density 0.00084); paper's Table 1: 29,858 / 40,981 / "
                      "1,027,370 (0.00084)")
  assert len(lines) == 3  # no note: Gowalla is the paper's data


def test_describe_split_gives_the_fn_set_and_why_counts_differ():
  lines = reference.describe_split(data_lib.load_split(_config("ml100k", "fn")))
  assert lines[2] == ("ml100k: 943 users / 1,682 items / 100,000 interactions "
                      "(density 0.06305), FN set 17,057; paper's Table 1: 943 / "
                      "1,682 / 100,000 (0.06304), FN set 17,057")
  assert lines[3].startswith("note: counts and FN set are the paper's")


def test_describe_split_of_a_dataset_not_in_the_table():
  empty = np.zeros((0, 2), np.int32)
  split = core.Split(3, 4, np.array([[0, 1], [1, 2], [2, 3]], np.int32),
                     np.array([[0, 2]], np.int32), empty, empty, "toy", "by hand")
  assert reference.describe_split(split) == [
      "data: toy from (source not recorded)",
      "split: by hand; train 3, valid 1, test 0, fn 0",
      "toy: 3 users / 4 items / 4 interactions (density 0.33333)"]


def test_measure_counts_interactions_and_splits_alike():
  data = data_lib.load_interactions(_config("ml100k"))
  split = core.make_split(data, "paper")
  assert reference.measure(data) == reference.measure(split)
  assert reference.measure(data, 5) == reference.Counts(943, 1682, 100_000,
                                                        100_000 / (943 * 1682), 5)
