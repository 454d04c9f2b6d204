"""launch/paper.py and pdns_jax/experiments/paper.py.

Two experiments run end to end at smoke scale; the tables and figures of all
seven are checked on constructed rows and curves (no training), planned from
each experiment's real smoke config and grid.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from pdns_jax import plot
from pdns_jax.config import ConfigError
from pdns_jax.experiments import grid
from pdns_jax.experiments import paper
from pdns_jax.experiments import tables

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# MF compiles faster; robustness compares samplers under LightGCN only.
MODELS = {name: "lightgcn" if name == "robustness" else "mf" for name in paper.EXPERIMENTS}
# What each table must show (smoke grids keep the ends of numeric axes).
EXPECTED_ROWS = {
    "overfitting": ["H=8", "H=64"], "mixing": ["α=0 (DNS)", "α=0.9"],
    "false_negatives": ["c=0", "c=1"], "comparison": ["| RNS", "| DNS", "| PDNS", "Improv."],
    "robustness": ["PDNS", "DNS", "MixGCF"], "hardness": ["| 8 |", "| 64 |"],
    "soft_factor": ["β=0.01", "β=0.4"]}
EPOCHS = np.arange(1, 5)


# ----------------------------------------------------------------------------
# Tables and figures from constructed results.


def _constructed(name, seeds=2):
  """Rows and curves as run_experiment collects them, with made-up metrics.

  Setting k, seed s reaches test Recall@50 0.1 k + 0.01 s + 0.001 epoch, so a
  table that looked up another setting's curve would show other numbers.
  """
  model = MODELS[name]
  config = paper.experiment_config(name, "synthetic", model, "smoke")
  runs = grid.plan_runs(config, paper.experiment_axes(name, model, "smoke"), seeds=seeds)
  fields = [f for f, _ in paper.EXPERIMENTS[name].axes]
  index = {}
  rows, curves = [], []
  for run in runs:
    for setting in run.settings:
      k = index.setdefault(tuple(setting[f] for f in fields), len(index))
      s = setting["seed"]
      recall = 0.1 * k + 0.01 * s + 0.001 * EPOCHS
      rows.append({"dataset": "synthetic", "run": run.name, **setting, "best_epoch": 2,
                   "valid/recall@50": 0.5 - 0.01 * k, "test/recall@20": recall[1] / 2,
                   "test/ndcg@20": recall[1] / 4, "test/recall@50": recall[1],
                   "test/ndcg@50": recall[1] / 3, "epochs_run": 4, "seconds": 1.0})
      curves.append(plot.Curve(label=run.name, epochs=EPOCHS, hparams={
          "dataset": "synthetic", **setting}, values={
              "test/recall@50": recall, "fn_hit_rate": np.full(4, 0.01 * k)}))
  return rows, curves, index


@pytest.mark.parametrize("name", list(paper.EXPERIMENTS))
def test_table_and_figure_of_every_experiment(name, tmp_path):
  rows, curves, index = _constructed(name)
  before = [dataclasses.replace(c) for c in curves]
  table = paper.experiment_table(name, rows, curves, seeds=2, scale="smoke")
  for text in EXPECTED_ROWS[name]:
    assert text in table, text
  figure = paper.experiment_figure(name, curves, tmp_path / "f.png", "t", marks=[2])
  assert figure.read_bytes().startswith(PNG_MAGIC)
  # Averaging makes new curves; the caller's keep their labels and hparams.
  assert [(c.label, c.hparams) for c in curves] == [(c.label, c.hparams) for c in before]
  if paper.EXPERIMENTS[name].columns is None:
    lines = [line.replace("**", "") for line in table.splitlines()]  # unbold the best
    assert sum("(best)" in line for line in lines) == 1
    fields = [f for f, _ in paper.EXPERIMENTS[name].axes]
    for values, k in index.items():
      [line] = [l for l in lines if l.startswith(
          "| " + paper.settings_text(dict(zip(fields, values))) + " ")]
      last = 0.1 * k + 0.005 + 0.004  # mean over seeds 0 and 1 at epoch 4
      assert f"| {last:.4f} (4) | {last:.4f} | {0.01 * k:.4f} |" in line, line


def test_pivot_tables_lay_out_rows_and_column_groups():
  rows, _, _ = _constructed("hardness", seeds=1)
  lines = paper.pivot_table(rows, "pool_size", "sampler", improvement=False).splitlines()
  assert lines[0] == "| H | DNS Recall@50 | DNS NDCG@50 | PDNS Recall@50 | PDNS NDCG@50 |"
  # Setting order: (dns, 8), (dns, 64), (pdns, 8), (pdns, 64) -> k = 0..3.
  assert lines[2] == "| 8 | 0.0020 | 0.0007 | 0.2020 | 0.0673 |"
  assert lines[3] == "| 64 | 0.1020 | 0.0340 | 0.3020 | 0.1007 |"


def test_comparison_table_gives_the_improvement_over_the_best_baseline():
  rows = [{"dataset": d, "sampler": s, "seed": 0, "best_epoch": 1, "valid/recall@50": 0.5,
           "test/recall@50": r, "test/ndcg@50": n, "seconds": 1.0}
          for d, s, r, n in [("ml100k", "rns", 0.10, 0.05), ("ml100k", "dns", 0.20, 0.04),
                             ("ml100k", "pdns", 0.25, 0.06), ("douban", "rns", 0.40, 0.20),
                             ("douban", "pdns", 0.30, 0.10)]]
  lines = paper.pivot_table(rows, "sampler", "dataset", improvement=True).splitlines()
  assert lines[0] == ("| sampler | Movielens-100k Recall@50 | Movielens-100k NDCG@50 | "
                      "Douban Recall@50 | Douban NDCG@50 |")
  assert lines[3] == "| DNS | 0.2000 | 0.0400 | - | - |"
  assert lines[-1] == "| Improv. (PDNS vs best baseline) | +25.00% | +20.00% | -25.00% | -50.00% |"


def test_comparison_cells_are_chosen_by_validation_over_the_search():
  # Per sampler two learning rates; PDNS also two betas. The cell shows the
  # setting with the better validation metric, whatever its test metric.
  def row(sampler, lr, valid, test, beta=None):
    extra = {} if beta is None else {"beta": beta}
    return {"dataset": "ml100k", "sampler": sampler, "learning_rate": lr, **extra,
            "seed": 0, "best_epoch": 3, "valid/recall@50": valid, "test/recall@50": test,
            "test/ndcg@50": test / 2, "seconds": 2.0}
  rows = [row("rns", 0.001, 0.30, 0.50), row("rns", 0.005, 0.35, 0.20),
          row("pdns", 0.001, 0.40, 0.10, beta=0.1), row("pdns", 0.005, 0.20, 0.90, beta=0.1),
          row("pdns", 0.001, 0.10, 0.80, beta=0.3), row("pdns", 0.005, 0.45, 0.30, beta=0.3)]
  lines = paper.pivot_table(rows, "sampler", "dataset", improvement=True).splitlines()
  assert lines[2] == "| RNS | 0.2000 | 0.1000 |"
  assert lines[3] == "| PDNS | 0.3000 | 0.1500 |"
  assert lines[4] == "| Improv. (PDNS vs best baseline) | +50.00% | +50.00% |"
  chosen = paper.chosen_settings(rows, "sampler", "dataset")
  assert "| RNS | Movielens-100k | learning_rate=0.005 | 3 | 2 |" in chosen
  assert "| PDNS | Movielens-100k | learning_rate=0.005, β=0.3 | 3 | 2 |" in chosen


def test_paper_scale_configs():
  config = paper.experiment_config("false_negatives", "ml100k", "mf", "paper")
  assert (config.split, config.sampler, config.reveal_start, config.reveal_every) == (
      "fn", "dns", 150, 50)
  assert config.num_epochs == 150 + 5 * 50 + 50
  assert config.patience > config.num_epochs // config.eval_every  # curves: no early stop
  douban = paper.experiment_config("false_negatives", "douban", "lightgcn", "paper")
  assert douban.reveal_start == 100 and douban.model == "lightgcn"
  hardness = paper.experiment_config("hardness", "ml100k", "lightgcn", "paper",
                                     overrides=[("num_epochs", 7), ("beta", "0.5")])
  assert (hardness.num_epochs, hardness.patience, hardness.beta) == (7, 10, 0.5)
  assert paper.experiment_axes("hardness", "mf", "paper") == [
      ("sampler", ["dns", "pdns"]), ("pool_size", [8, 16, 32, 64])]
  # Table 2's ten samplers in the paper's order; MixGCF only under LightGCN.
  assert paper.experiment_axes("comparison", "mf", "paper") == [
      ("sampler", ["rns", "advir", "irgan", "dns", "srns", "gdns", "adasir_u", "adasir_p",
                   "pdns"])]
  assert "mixgcf" in paper.experiment_axes("comparison", "lightgcn", "paper")[0][1]
  with pytest.raises(ConfigError, match="LightGCN"):
    paper.experiment_axes("robustness", "mf", "paper")
  with pytest.raises(ConfigError, match="config.lerning_rate"):
    paper.experiment_config("hardness", "ml100k", "mf", "paper", overrides=[
        ("lerning_rate", 0.1)])


# ----------------------------------------------------------------------------
# End to end at smoke scale.


def test_false_negatives_at_smoke_scale(tmp_path):
  result = paper.run_experiment("false_negatives", ["synthetic"], "mf", tmp_path,
                                scale="smoke")
  table = (tmp_path / "table.md").read_text()
  assert "c=0" in table and "c=1" in table and "last FN hit rate" in table
  assert result["figure"] == tmp_path / "false_negatives.png"
  assert result["figure"].read_bytes().startswith(PNG_MAGIC)
  assert len(tables.read_csv(tmp_path / "runs.csv")) == len(result["rows"]) == 2
  assert all(0 < r["test/recall@50"] <= 1 for r in result["rows"])
  # Smoke: first reveal at epoch 2, then every epoch.
  revealed = plot.read_curves(tmp_path / "runs" / "reveal_fraction=1,seed=0")[0]
  assert revealed.values["revealed"].tolist() == [0.0, 0.0, 0.2, 0.4]
  assert all(0 <= v <= 1 for v in revealed.values["fn_hit_rate"])


def test_soft_factor_trains_its_betas_as_replicas(tmp_path):
  result = paper.run_experiment("soft_factor", ["synthetic"], "mf", tmp_path,
                                scale="smoke", overrides=[("num_epochs", 2)])
  [run_dir] = (tmp_path / "runs").iterdir()
  assert run_dir.name == "beta=0.01+0.05+0.1+0.2+0.3+0.4,seed=0"
  assert [r["beta"] for r in result["rows"]] == [0.01, 0.05, 0.1, 0.2, 0.3, 0.4]
  assert {r["epochs_run"] for r in result["rows"]} == {2}
  assert "β=0.4" in result["table"].read_text()


def test_bad_input_is_refused_before_any_training(tmp_path):
  with pytest.raises(ConfigError, match="takes one --dataset"):
    paper.run_experiment("overfitting", ["synthetic", "ml100k"], "mf", tmp_path, "smoke")
  with pytest.raises(ConfigError, match="--seeds: must be >= 1"):
    paper.run_experiment("overfitting", ["synthetic"], "mf", tmp_path, "smoke", seeds=0)
  with pytest.raises(ConfigError, match=r"config.eval_every: must be >= 1"):
    paper.run_experiment("overfitting", ["synthetic"], "mf", tmp_path, "smoke",
                         overrides=[("eval_every", 0)])
  assert not list(tmp_path.iterdir())


def test_command_line_rejects_bad_input(tmp_path):
  (tmp_path / "file").write_text("")
  base = ["launch/paper.py", "--experiment=overfitting", "--dataset=synthetic",
          "--scale=smoke"]
  argvs = {"--seeds: must be >= 1": base + ["--seeds=0", f"--out={tmp_path}"],
           "--out must have a value": base,
           "--out: ": base + [f"--out={tmp_path / 'file'}"],
           "config.bta": base + ["--config.bta=1", f"--out={tmp_path}"]}
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  procs = {text: subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for text, argv in argvs.items()}
  for text, proc in procs.items():
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 2 and text in stderr, (text, stderr)
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
  assert not (tmp_path / "runs").exists()
