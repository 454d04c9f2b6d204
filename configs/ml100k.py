"""Movielens-100k (PAPER.md 4) with the paper's Table 5 settings.

LightGCN + PDNS (H 32, lr 0.005, F 32, L 3, lambda 0.01, beta 0.1), temporal split:
  python -m pdns_jax.main --config=configs/ml100k.py --workdir=/tmp/ml
MF (Table 5's MF row: lr 0.001):
  python -m pdns_jax.main --config=configs/ml100k.py:mf --workdir=/tmp/ml_mf
Variants, comma separated after the colon: "mf", "fn" (the 4:1:1 simulation
split with a false-negative set), "smoke" (a seconds-long run).
Seen (one seed, CPU): see README.md, "Results on Movielens-100k".
"""

from configs import paper_settings


def get_config(arg: str = ""):
  c = paper_settings.dataset_config("ml100k", arg)
  return c.lock()
