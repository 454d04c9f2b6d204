"""pdns_jax.recommend: top-K in the source's ids, without training items; export; errors."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import ml100k as ml100k_config
from pdns_jax import data as data_lib
from pdns_jax import recommend
from pdns_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  config = ml100k_config.get_config("mf,smoke")
  config.unlock()
  config.num_epochs, config.tensorboard = 1, False
  config.lock()
  workdir = tmp_path_factory.mktemp("run")
  train.train_and_evaluate(config, workdir)
  return workdir, data_lib.load_split(config)


def _u_data_items(user):
  path = pathlib.Path(os.environ["PDNS_DATA_DIR"]) / "ml-100k" / "u.data"
  rows = np.loadtxt(path, dtype=np.int64)
  return set(rows[rows[:, 0] == user, 1].tolist())


def test_top_k_in_original_ids_without_training_items(trained):
  workdir, split = trained
  users, items, served_split = recommend.load_embeddings(workdir)
  rows = recommend.recommend(users, items, served_split, [196, 1], k=10)
  assert [r["user"] for r in rows] == [196] * 10 + [1] * 10
  for raw in (196, 1):
    mine = [r for r in rows if r["user"] == raw]
    assert [r["rank"] for r in mine] == list(range(1, 11))
    scores = [r["score"] for r in mine]
    assert scores == sorted(scores, reverse=True)
    internal = int(np.flatnonzero(split.user_ids == raw)[0])
    trained_raw = set(split.item_ids[split.train[split.train[:, 0] == internal, 1]].tolist())
    assert trained_raw and trained_raw <= _u_data_items(raw)  # the id maps are u.data's
    assert not trained_raw & {r["item"] for r in mine}
    # The scores are the embeddings' dot products, item ids mapped back.
    item_internal = {int(raw_id): i for i, raw_id in enumerate(split.item_ids)}
    for r in mine:
      assert r["score"] == pytest.approx(float(items[item_internal[r["item"]]] @ users[internal]),
                                         rel=1e-5)
  with pytest.raises(train.ConfigError, match=r"unknown user id\(s\) \[99999\]"):
    recommend.recommend(users, items, served_split, [99999], k=5)


def test_command_line_json_and_export(trained, tmp_path):
  workdir, split = trained
  # A workdir given relative to the current folder, as users type it.
  result = subprocess.run(
      [sys.executable, "-m", "pdns_jax.recommend", f"--workdir={workdir.name}", "--users=196",
       "--k=3", "--format=json", f"--export={tmp_path / 'export'}"],
      cwd=workdir.parent, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  rows = json.loads(result.stdout[result.stdout.index("["):])
  assert [r["rank"] for r in rows] == [1, 2, 3]
  exported = {p.stem: np.load(p) for p in (tmp_path / "export").glob("*.npy")}
  assert exported["user_embeddings"].shape == (split.num_users, 8)
  assert exported["item_embeddings"].shape == (split.num_items, 8)
  np.testing.assert_array_equal(exported["user_ids"], split.user_ids)
  bad = subprocess.run([sys.executable, "-m", "pdns_jax.recommend", f"--workdir={tmp_path}",
                        "--users=1"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       check=False)
  assert bad.returncode == 2 and "no config.json" in bad.stderr
