"""Tmall, preprocessed as the paper does (PAPER.md 4, 5).

LightGCN + PDNS with the paper's Table 6 settings (H 16, lr 0.005, F 64, L 3,
lambda 0.001, beta 0.1):
  python -m pdns_jax.main --config=configs/tmall.py --workdir=/tmp/tmall
MF (Table 6's MF row: H 32, lr 0.001, F 32, lambda 0.01, beta 0.3):
  --config=configs/tmall.py:mf
Tiny 2-epoch check on 1,000 users: --config=configs/tmall.py:smoke (or :mf,smoke)
Data: tmall/user_log_format1.csv[.gz] (Tianchi IJCAI-15, the paper's source)
under --config.data_dir or $PDNS_DATA_DIR: users with >= 10 interactions, a
seeded random 10,000 of them, temporal split. Without it, the public MULE
substitute in tmall/ (buy, cart, collect, valid, test; no clicks, no
timestamps): 18,589 users qualify, a seeded 10,000 kept, random 10% per user as
test. The run prints which source it used.
Expected test Recall@50: not yet measured.
"""

from configs import paper_settings


def get_config(arg: str = ""):
  c = paper_settings.dataset_config("tmall", arg)
  return c.lock()
