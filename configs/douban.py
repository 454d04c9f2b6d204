"""Douban (GC-MC), the paper's false-negative simulation data (PAPER.md 4, 8.3).

LightGCN + PDNS with the paper's Table 5 settings (H 32, lr 0.002, F 32, L 3,
lambda 0.01; beta 0.1, as Table 5 gives none) on the 4:1:1 train/test/FN split:
  python -m pdns_jax.main --config=configs/douban.py --workdir=/tmp/douban
MF (Table 5's MF row): --config=configs/douban.py:mf
Tiny 2-epoch check: --config=configs/douban.py:smoke (or :mf,smoke)
The paper's temporal protocol instead: --config.split=paper (Douban has no
timestamps, so a seeded random 10% per user is held out).
Data: douban/training_test_dataset.mat under --config.data_dir or
$PDNS_DATA_DIR; 2,999 users / 3,000 items / 136,891 ratings (paper: 2,862 /
3,000 / 134,498; its user filter is not stated).
Expected test Recall@50: not yet measured.
"""

from configs import paper_settings


def get_config(arg: str = ""):
  c = paper_settings.dataset_config("douban", arg)
  c.split = "fn"
  c.beta = 0.1
  return c.lock()
