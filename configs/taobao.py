"""Taobao, preprocessed as the paper does (PAPER.md 4, 5).

LightGCN + PDNS with the paper's Table 6 settings (H 16, lr 0.001, F 64, L 3,
lambda 0.001, beta 0.1; the paper's training curve used lr 0.005 before epoch 40):
  python -m pdns_jax.main --config=configs/taobao.py --workdir=/tmp/taobao
MF (Table 6's MF row: H 8, lr 0.001, F 32, lambda 0.01, beta 0.1):
  --config=configs/taobao.py:mf
Tiny 2-epoch check on 1,000 users: --config=configs/taobao.py:smoke (or :mf,smoke)
Data: taobao/UserBehavior.csv[.gz] (Tianchi, the paper's source) under
--config.data_dir or $PDNS_DATA_DIR: users with >= 10 interactions, a seeded
random 22,976 of them, temporal split. Without it, the public MULE substitute in
taobao/ (buy, cart, valid, test; no clicks, no timestamps): only 12,336 users
qualify, all kept (11,931 items, 256,946 interactions), random 10% per user as
test. The run prints which source it used.
Expected test Recall@50: not yet measured.
"""

from configs import paper_settings


def get_config(arg: str = ""):
  c = paper_settings.dataset_config("taobao", arg)
  return c.lock()
