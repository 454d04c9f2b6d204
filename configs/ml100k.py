"""Movielens-100k (PAPER.md 4), the paper's Table 5 settings.

Run:
  python -m pdns_jax.main --config=configs/ml100k.py --workdir=/tmp/ml
  python -m pdns_jax.main --config=configs/ml100k.py:mf --workdir=/tmp/ml_mf
Variants (comma-separated after the colon): "mf" selects the MF row of Table 5
(lr 0.001 instead of LightGCN's 0.005), "fn" the 4:1:1 simulation split,
"smoke" a seconds-long run.
Expected (temporal split, one seed): see README.md, "Results".
"""

from configs import default


def get_config(arg: str = ""):
  variants = set(filter(None, arg.split(",")))
  c = default.get_config()
  c.unlock()
  c.dataset = "ml100k"
  c.data_dir = ""
  c.model = "mf" if "mf" in variants else "lightgcn"
  c.sampler = "pdns"
  c.pool_size = 32
  c.embed_dim = 32
  c.num_layers = 3
  c.l2 = 0.01
  c.learning_rate = 0.001 if c.model == "mf" else 0.005
  c.beta = 0.1
  c.batch_size = 2048
  c.num_epochs = 300
  c.eval_every = 5
  c.patience = 10
  if "fn" in variants:
    c.split = "fn"
  if "smoke" in variants:
    c.embed_dim, c.num_epochs, c.eval_every, c.progress = 8, 2, 1, False
  return c.lock()
