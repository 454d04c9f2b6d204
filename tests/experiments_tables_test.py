"""pdns_jax/experiments/tables.py: aggregation, model selection, CSV, markdown."""

import pytest

from pdns_jax.experiments import tables


def _row(beta, seed, valid, test):
  return {"run": f"beta={beta}", "beta": beta, "seed": seed, "best_epoch": 3,
          "valid/recall@50": valid, "test/recall@20": test / 2, "test/ndcg@20": test / 4,
          "test/recall@50": test, "test/ndcg@50": test / 3, "epochs_run": 5,
          "seconds": 1.0}


# beta=0.1 has the better validation Recall, beta=0.2 the better test Recall.
ROWS = [_row(0.1, 0, 0.30, 0.10), _row(0.1, 1, 0.34, 0.12),
        _row(0.2, 0, 0.28, 0.40), _row(0.2, 1, 0.29, 0.42)]


def test_aggregate_gives_mean_and_sample_std_over_seeds():
  settings = tables.aggregate(ROWS, ["beta"])
  assert [s.values for s in settings] == [{"beta": 0.1}, {"beta": 0.2}]
  assert [s.seeds for s in settings] == [2, 2]
  assert settings[0].mean["valid/recall@50"] == pytest.approx(0.32)
  assert settings[0].std["valid/recall@50"] == pytest.approx(0.04 / 2 ** 0.5)
  assert settings[1].mean["test/recall@50"] == pytest.approx(0.41)
  assert tables.aggregate(ROWS[:1], ["beta"])[0].std["test/recall@50"] == 0.0


def test_best_setting_is_chosen_by_validation_not_test():
  settings = tables.aggregate(ROWS, ["beta"])
  assert tables.select_key(ROWS) == "valid/recall@50"
  assert tables.best_setting(settings, "valid/recall@50") == 0
  with pytest.raises(ValueError, match="validation"):
    tables.best_setting(settings, "test/recall@50")
  text = tables.aggregate_markdown(ROWS, ["beta"], "t")
  best_line = [l for l in text.splitlines() if "(best)" in l]
  assert len(best_line) == 1 and best_line[0].startswith("| **beta=0.1** (best) | 2 | 3 |")
  assert "**0.3200 ± 0.0283**" in best_line[0]
  assert "Best setting by valid/recall@50: beta=0.1 (test/recall@50 0.1100 ± 0.0141)" in text


def test_settings_table_extra_columns_and_labels():
  settings = tables.aggregate(ROWS, ["beta"])
  text = tables.settings_table(settings, "valid/recall@50", label=lambda v: f"b{v['beta']}",
                               extra=[("x", lambda s: f"{s.mean['best_epoch']:.1f}")])
  lines = text.splitlines()
  assert lines[0].endswith("| seconds | x |")
  assert lines[3].startswith("| b0.2 | 2 |") and lines[3].endswith("| 1 | 3.0 |")


def test_csv_round_trip(tmp_path):
  tables.write_csv(ROWS, tmp_path / "sub" / "runs.csv")
  assert tables.read_csv(tmp_path / "sub" / "runs.csv") == ROWS
