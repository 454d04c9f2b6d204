"""Dataset configs: the paper's Table 5/6 settings, variants, and a short run each."""

import importlib
import json

import pytest

from conftest import SHARED_DATA
from pdns_jax import train

DATASETS = ("douban", "gowalla", "taobao", "tmall")


def _get(name, arg=""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.mark.parametrize("name,arg,expected", [
    ("douban", "", dict(model="lightgcn", pool_size=32, learning_rate=0.002,
                        embed_dim=32, num_layers=3, l2=0.01, beta=0.1, split="fn")),
    ("douban", "mf", dict(model="mf", pool_size=32, learning_rate=0.002,
                          embed_dim=32, l2=0.01, beta=0.1)),
    ("taobao", "", dict(model="lightgcn", pool_size=16, learning_rate=0.001,
                        embed_dim=64, num_layers=3, l2=0.001, beta=0.1)),
    ("taobao", "mf", dict(model="mf", pool_size=8, learning_rate=0.001,
                          embed_dim=32, l2=0.01, beta=0.1)),
    ("tmall", "", dict(model="lightgcn", pool_size=16, learning_rate=0.005,
                       embed_dim=64, num_layers=3, l2=0.001, beta=0.1)),
    ("tmall", "mf", dict(model="mf", pool_size=32, learning_rate=0.001,
                         embed_dim=32, l2=0.01, beta=0.3)),
    ("gowalla", "", dict(model="lightgcn", pool_size=64, learning_rate=0.005,
                         embed_dim=64, num_layers=3, l2=0.0001, beta=0.01)),
    ("gowalla", "mf", dict(model="mf", pool_size=64, learning_rate=0.001,
                           embed_dim=64, l2=0.01, beta=0.2)),
])
def test_paper_settings(name, arg, expected):
  c = _get(name, arg)
  assert c.dataset == name and c.sampler == "pdns" and c.batch_size == 2048
  assert {k: c[k] for k in expected} == expected


def test_subsets_and_variants():
  assert _get("taobao").subset.num_users == 22_976
  assert _get("tmall").subset.num_users == 10_000
  assert _get("tmall").subset.min_interactions == 10
  assert _get("gowalla").subset.num_users == 0
  smoke = _get("tmall", "mf,smoke")
  assert (smoke.model, smoke.embed_dim, smoke.num_epochs, smoke.eval_every,
          smoke.progress, smoke.subset.num_users) == ("mf", 8, 2, 1, False, 1_000)
  assert _get("gowalla", " smoke ").embed_dim == 8
  with pytest.raises(ValueError, match="unknown variant"):
    _get("gowalla", "lightgnc")
  with pytest.raises(AttributeError):  # locked: a misspelt field fails
    _get("douban").lerning_rate = 0.1


@pytest.mark.parametrize("name", DATASETS)
def test_trains_two_epochs_with_mf(tmp_path, name):
  c = _get(name, "mf,smoke")
  c.unlock()
  c.data_dir = str(SHARED_DATA)  # tmall and taobao: the MULE substitutes
  c.tensorboard = False
  # One evaluation and fewer, larger steps: Gowalla's 30k x 41k full-rank
  # evaluation and 400 steps of 2048 otherwise dominate the test suite.
  c.eval_every, c.batch_size = 2, 16_384
  summary = train.train_and_evaluate(c.lock(), tmp_path)
  assert json.loads((tmp_path / "summary.json").read_text())["best_epoch"] == 2
  assert 0.0 <= summary["test/recall@50"] <= 1.0
