"""Gowalla (NGCF/LightGCN preprocessing) with its own train/test split (PAPER.md 4, 5).

LightGCN + PDNS with the paper's Table 6 settings (H 64, lr 0.005, F 64, L 3,
lambda 0.0001, beta 0.01):
  python -m pdns_jax.main --config=configs/gowalla.py --workdir=/tmp/gowalla
MF (Table 6's MF row: H 64, lr 0.001, F 64, lambda 0.01, beta 0.2):
  --config=configs/gowalla.py:mf
Tiny 2-epoch check: --config=configs/gowalla.py:smoke (or :mf,smoke); the data
comes pre-split, so it keeps all 29,858 users and is only kept short.
Data: gowalla/train.txt and test.txt (plain or .gz; test.txt may sit in
gowalla/lightgcn_raw/) under --config.data_dir or $PDNS_DATA_DIR, or
`python -m pdns_jax.data.download gowalla`. 29,858 users / 40,981 items /
1,027,370 interactions, as the paper's.
Expected test Recall@50: not yet measured.
"""

from configs import paper_settings


def get_config(arg: str = ""):
  c = paper_settings.dataset_config("gowalla", arg)
  return c.lock()
