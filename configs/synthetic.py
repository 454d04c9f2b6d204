"""Built-in synthetic data with a planted FN set: the no-download default.

Run (about 15 seconds on a 2-core CPU):
  python -m pdns_jax.main --config=configs/synthetic.py --workdir=/tmp/run
Seen: LightGCN + PDNS stops early at epoch 30 with the best validation epoch 10,
test Recall@50 0.563, NDCG@50 0.333 (seed 0).
Smoke variant for tests: --config=configs/synthetic.py:smoke

Web scale (kind zipf: Zipf user activity and item popularity, linear in
interactions, random 8:1:1 paper split; the data alone needs about 8 GB):
  python -m pdns_jax.main --config=configs/synthetic.py:web --workdir=/tmp/web
  # 1M users x 1M items x 50M interactions, MF + PDNS, d 64, batch 2048.
  --config=configs/synthetic.py:zipf_small   # 20k x 20k x 200k, for tests
  # any size: --config.synthetic.num_users=... num_items=... num_interactions=...
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
  elif arg in ("web", "zipf_small"):
    c.synthetic.kind = "zipf"
    c.split = "paper"  # no timestamps: a seeded random 10% per user is the test set
    c.model = "mf"
    c.embed_dim, c.pool_size, c.batch_size = 64, 32, 2048
    c.beta = 0.1
    c.num_epochs, c.eval_every, c.patience = 20, 5, 2
    c.synthetic.user_exponent, c.synthetic.item_exponent = 0.6, 0.8
    if arg == "web":
      c.synthetic.num_users = c.synthetic.num_items = 1_000_000
      c.synthetic.num_interactions = 50_000_000
      c.eval_item_chunk = 65536
    else:
      c.synthetic.num_users = c.synthetic.num_items = 20_000
      c.synthetic.num_interactions = 200_000
  elif arg:
    raise ValueError(f"configs/synthetic.py: unknown variant {arg!r}; "
                     "use smoke, web or zipf_small")
  return c.lock()
