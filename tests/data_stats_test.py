"""`python -m pdns_jax.data.stats` over ../shared/data: the exact counts."""

import subprocess
import sys

from conftest import ROOT, SHARED_DATA
from pdns_jax.data import stats


def _rows(report: str) -> dict:
  """{(dataset, "ours" | "paper"): [users, items, interactions, density, fn]}."""
  rows, dataset = {}, None
  for line in report.splitlines():
    fields = line.split()
    if len(fields) == 7 and fields[1] in ("ours", "paper"):
      dataset = fields[0]
      fields = fields[1:]
    if len(fields) == 6 and fields[0] in ("ours", "paper") and dataset:
      rows[(dataset, fields[0])] = fields[1:]
  return rows


def test_stats_over_shared_data(monkeypatch, capsys):
  monkeypatch.setenv("PDNS_DATA_DIR", str(SHARED_DATA))
  assert stats.main([]) == 0
  out = capsys.readouterr().out
  rows = _rows(out)
  expected_ours = {
      "ml100k": ["943", "1,682", "100,000", "0.06305", "17,057"],  # FN = paper's
      "gowalla": ["29,858", "40,981", "1,027,370", "0.00084", "-"],
      "douban": ["2,999", "3,000", "136,891", "0.01522", "24,062"],
      "tmall": ["10,000", "11,943", "187,453", "0.00157", "-"],    # MULE substitute
      "taobao": ["12,336", "11,931", "256,946", "0.00175", "-"],   # MULE substitute
  }
  for name, cells in expected_ours.items():
    assert rows[(name, "ours")] == cells, name
    paper = stats.PAPER_TABLE1[name]
    assert rows[(name, "paper")][:3] == [f"{paper.users:,}", f"{paper.items:,}",
                                         f"{paper.interactions:,}"]
  assert rows[("synthetic", "ours")][4] != "-"
  assert out.count("SUBSTITUTE, not the paper's Tianchi subset") == 2
  assert "note: the paper keeps 2,862 users" in out


def test_absent_datasets_are_listed_with_how_to_get_them(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "pdns_jax.data.stats", "--data_dir", str(tmp_path),
       "--dataset", "gowalla,ml100k,synthetic"],
      cwd=ROOT, capture_output=True, text=True, check=True)
  assert f"gowalla    not found or unreadable: gowalla: data file {tmp_path}/gowalla/train.txt not found" in result.stdout
  assert "python -m pdns_jax.data.download ml100k" in result.stdout
  assert ("synthetic", "ours") in _rows(result.stdout)


def test_stats_config_reads_the_dataset_config():
  config = stats.stats_config("gowalla", "/somewhere")
  assert (config.dataset, config.data_dir) == ("gowalla", "/somewhere")
  assert stats.stats_config("synthetic").dataset == "synthetic"
