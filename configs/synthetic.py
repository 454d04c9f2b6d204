"""Built-in synthetic data with a planted FN set: the no-download default.

Run (about 15 seconds on a 2-core CPU):
  python -m pdns_jax.main --config=configs/synthetic.py --workdir=/tmp/run
Seen: LightGCN + PDNS stops early at epoch 30 with the best validation epoch 10,
test Recall@50 0.563, NDCG@50 0.333 (seed 0).
Smoke variant for tests: --config=configs/synthetic.py:smoke
"""

from configs import default


def get_config(arg: str = ""):
  c = default.get_config()
  c.unlock()
  c.dataset = "synthetic"
  c.split = "fn"
  c.model = "lightgcn"
  c.sampler = "pdns"
  c.embed_dim = 32
  c.pool_size = 16
  c.beta = 0.2
  c.learning_rate = 0.005
  c.l2 = 0.001
  c.batch_size = 1024
  c.num_epochs = 40
  c.eval_every = 5
  c.patience = 4
  if arg == "smoke":
    c.synthetic.num_users, c.synthetic.num_items = 60, 120
    c.synthetic.mean_degree = 15.0
    c.embed_dim, c.batch_size, c.num_epochs, c.eval_every = 8, 256, 3, 1
    c.progress = False
  return c.lock()
