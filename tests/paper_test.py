"""launch/paper.py: every experiment end to end at smoke scale, plus its tables."""

import subprocess
import sys

import pytest

from launch import paper
from pdns_jax import experiments
from pdns_jax import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# MF compiles faster; robustness compares samplers under LightGCN only.
MODELS = {name: "lightgcn" if name == "robustness" else "mf" for name in paper.EXPERIMENTS}
# What each table must show (smoke grids keep the ends of numeric axes).
EXPECTED_ROWS = {
    "overfitting": ["H=8", "H=64"], "mixing": ["α=0 (DNS)", "α=0.9"],
    "false_negatives": ["c=0", "c=1"], "comparison": ["| RNS", "| DNS", "| PDNS", "Improv."],
    "robustness": ["PDNS", "DNS", "MixGCF"], "hardness": ["| 8 |", "| 64 |"],
    "soft_factor": ["β=0.01", "β=0.4"]}


@pytest.mark.parametrize("name", list(paper.EXPERIMENTS))
def test_experiment_at_smoke_scale(name, tmp_path):
  result = paper.run_experiment(name, ["synthetic"], MODELS[name], tmp_path, scale="smoke")
  table = (tmp_path / "table.md").read_text()
  for text in EXPECTED_ROWS[name]:
    assert text in table, text
  assert result["figure"] == tmp_path / f"{name}.png"
  assert result["figure"].read_bytes().startswith(PNG_MAGIC)
  assert len(experiments.read_csv(tmp_path / "runs.csv")) == len(result["rows"])
  assert all(0 < r["test/recall@50"] <= 1 for r in result["rows"])
  if name == "false_negatives":  # smoke: first reveal at epoch 2, then every epoch
    revealed = plot.read_curves(tmp_path / "runs" / "reveal_fraction=1,seed=0")[0]
    assert revealed.values["revealed"].tolist() == [0.0, 0.0, 0.2, 0.4]
    assert all(0 <= v <= 1 for v in revealed.values["fn_hit_rate"])


def test_paper_scale_configs():
  config = paper.experiment_config("false_negatives", "ml100k", "mf", "paper")
  assert (config.split, config.sampler, config.reveal_start, config.reveal_every) == (
      "fn", "dns", 150, 50)
  assert config.num_epochs == 150 + 5 * 50 + 50
  assert config.patience > config.num_epochs // config.eval_every  # curves: no early stop
  douban = paper.experiment_config("false_negatives", "douban", "lightgcn", "paper")
  assert douban.reveal_start == 100 and douban.model == "lightgcn"
  hardness = paper.experiment_config("hardness", "ml100k", "lightgcn", "paper",
                                     overrides=[("num_epochs", "7")])
  assert hardness.num_epochs == 7 and hardness.patience == 10
  assert paper.experiment_axes("hardness", "mf", "paper") == [
      ("sampler", ["dns", "pdns"]), ("pool_size", [8, 16, 32, 64])]
  assert paper.experiment_axes("comparison", "mf", "paper") == [
      ("sampler", ["rns", "dns", "pdns"])]
  with pytest.raises(experiments.GridError, match="LightGCN"):
    paper.experiment_axes("robustness", "mf", "paper")


def test_comparison_table_gives_the_improvement_over_the_best_baseline():
  rows = [{"dataset": d, "sampler": s, "seed": 0, "best_epoch": 1, "valid/recall@50": 0.5,
           "test/recall@50": r, "test/ndcg@50": n, "seconds": 1.0}
          for d, s, r, n in [("a", "rns", 0.10, 0.05), ("a", "dns", 0.20, 0.04),
                             ("a", "pdns", 0.25, 0.06), ("b", "rns", 0.40, 0.20),
                             ("b", "pdns", 0.30, 0.10)]]
  text = paper._pivot(rows, "sampler", "dataset", improvement=True)
  lines = text.splitlines()
  assert lines[0] == "| sampler | a Recall@50 | a NDCG@50 | b Recall@50 | b NDCG@50 |"
  assert lines[3] == "| DNS | 0.2000 | 0.0400 | - | - |"
  assert lines[-1] == "| Improv. (PDNS vs best baseline) | +25.00% | +20.00% | -25.00% | -50.00% |"


def test_command_line_rejects_a_second_dataset(tmp_path):
  result = subprocess.run(
      [sys.executable, "launch/paper.py", "--experiment=overfitting",
       "--dataset=synthetic,ml100k", f"--out={tmp_path}", "--scale=smoke"],
      cwd=paper.experiments.ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2 and "takes one --dataset" in result.stderr
