"""pdns_jax/plot.py: reading metrics.jsonl, averaging over seeds, drawing, the CLI."""

import ast
import json

import numpy as np
import pytest

from configs import synthetic
from pdns_jax import config as config_lib
from pdns_jax import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _workdir(path, lines, **config_fields):
  """A fake training workdir: config.json and metrics.jsonl written by hand."""
  config = config_lib.with_overrides(synthetic.get_config("smoke"), config_fields.items())
  path.mkdir(parents=True)
  (path / "config.json").write_text(config.to_json())
  (path / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
  return path


def test_metric_label():
  assert plot.metric_label("test/recall@50") == "Recall@50 (test)"
  assert plot.metric_label("valid/ndcg@20") == "NDCG@20 (valid)"
  assert plot.metric_label("fn_hit_rate") == "False-negative hit rate"


def test_read_curves_splits_replicas_and_labels_them(tmp_path):
  lines = [{"epoch": e, "replica": r, "test/recall@50": 0.1 * e + r, "fn_hit_rate": 0.5}
           for e in (5, 10) for r in range(4)]
  workdir = _workdir(tmp_path / "sweep", lines, num_replicas=2,
                     replica_sweep="beta=0.1,0.2")
  curves = plot.read_curves(workdir)
  # Trainer order: beta outer, seeds inner.
  assert [c.label for c in curves] == [
      "sweep, seed=0, beta=0.1", "sweep, seed=1, beta=0.1",
      "sweep, seed=0, beta=0.2", "sweep, seed=1, beta=0.2"]
  assert curves[2].hparams["beta"] == 0.2 and curves[3].hparams["seed"] == 1
  np.testing.assert_array_equal(curves[3].epochs, [5, 10])
  np.testing.assert_allclose(curves[3].values["test/recall@50"], [3.5, 4.0])


def test_read_curves_of_a_single_run(tmp_path):
  workdir = _workdir(tmp_path / "alone", [{"epoch": 1, "loss": 0.7, "test/recall@50": 0.2}])
  [curve] = plot.read_curves(workdir)
  assert curve.label == "alone" and curve.values["loss"].tolist() == [0.7]
  with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
    plot.read_curves(tmp_path / "missing")


def test_mean_curves_averages_per_epoch_over_the_runs_that_reached_it():
  a = plot.Curve("x", np.array([1, 2, 3]), {"m": np.array([1.0, 2.0, 3.0])})
  b = plot.Curve("x", np.array([1, 2]), {"m": np.array([3.0, 4.0])})  # stopped early
  c = plot.Curve("y", np.array([1]), {"m": np.array([9.0])})
  x, y = plot.mean_curves([a, b, c])
  assert (x.label, y.label) == ("x", "y")
  np.testing.assert_array_equal(x.epochs, [1, 2, 3])
  np.testing.assert_allclose(x.values["m"], [2.0, 3.0, 3.0])
  np.testing.assert_allclose(x.spread["m"], [np.sqrt(2), np.sqrt(2), 0.0])
  assert y.spread == {}


def test_mean_curves_by_key_makes_new_curves():
  a = plot.Curve("a", np.array([1]), {"m": np.array([1.0])}, hparams={"H": 8, "seed": 0})
  b = plot.Curve("b", np.array([1]), {"m": np.array([3.0])}, hparams={"H": 8, "seed": 1})
  c = plot.Curve("c", np.array([1]), {"m": np.array([5.0])}, hparams={"H": 16, "seed": 0})
  eight, sixteen = plot.mean_curves([a, b, c], key=lambda c: c.hparams["H"],
                                    label=lambda c: f"H={c.hparams['H']}")
  assert (eight.label, sixteen.label) == ("H=8", "H=16")
  assert eight.values["m"].tolist() == [2.0] and eight.hparams["H"] == 8
  assert (a.label, b.label, a.values["m"].tolist()) == ("a", "b", [1.0])  # untouched


def test_plot_reads_replicas_without_the_trainer():
  # Data flows one way: plot reads workdirs and the config module, not train.
  tree = ast.parse(open(plot.__file__).read())
  imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              and node.module == "pdns_jax" for alias in node.names}
  assert imported == {"config"}


def test_draw_writes_a_png(tmp_path):
  curve = plot.Curve("H=8", np.array([1, 2]), {"test/recall@50": np.array([0.1, 0.2])})
  out = plot.draw([plot.Panel("a", [curve], marks=[1, 99]),
                   plot.Panel("b", [curve], "fn_hit_rate")], tmp_path / "f" / "x.png",
                  title="t")
  assert out.read_bytes().startswith(PNG_MAGIC)


def test_command_line(tmp_path, capsys):
  lines = [{"epoch": e, "test/recall@50": 0.1 * e, "fn_hit_rate": 0.1} for e in (1, 2)]
  first = _workdir(tmp_path / "a", lines)
  second = _workdir(tmp_path / "b", lines)
  out = tmp_path / "fig.png"
  assert plot.main([str(first), str(second), "--out", str(out), "--metric",
                    "test/recall@50", "--metric", "fn_hit_rate"]) == 0
  assert out.read_bytes().startswith(PNG_MAGIC)
  assert plot.main([str(tmp_path / "nothing"), "--out", str(out)]) == 2
  assert "not found" in capsys.readouterr().err
