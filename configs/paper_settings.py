"""The paper's best PDNS settings per model and dataset, and the config variants.

PAPER.md section 7 (the paper's Tables 5 and 6). A dataset config calls
`dataset_config(name, arg)` and adds what is its own. Since an ml_collections
config cannot react to a later `--config.model=mf`, the MF row is selected by
the config argument instead: `--config=configs/<name>.py:mf`. Variants, comma
separated: `mf` (the MF row), `fn` (the 4:1:1 false-negative split), `smoke`
(tiny and short, for tests), e.g. `mf,smoke`.
"""

from configs import default

# (model, dataset) -> settings; beta only where the paper gives one (Table 6).
TABLE = {
    ("mf", "ml100k"): dict(pool_size=32, learning_rate=0.001, embed_dim=32, l2=0.01),
    ("lightgcn", "ml100k"): dict(pool_size=32, learning_rate=0.005, embed_dim=32,
                                 num_layers=3, l2=0.01),
    ("mf", "douban"): dict(pool_size=32, learning_rate=0.002, embed_dim=32, l2=0.01),
    ("lightgcn", "douban"): dict(pool_size=32, learning_rate=0.002, embed_dim=32,
                                 num_layers=3, l2=0.01),
    ("lightgcn", "taobao"): dict(pool_size=16, learning_rate=0.001, embed_dim=64,
                                 num_layers=3, l2=0.001, beta=0.1),
    ("lightgcn", "tmall"): dict(pool_size=16, learning_rate=0.005, embed_dim=64,
                                num_layers=3, l2=0.001, beta=0.1),
    ("lightgcn", "gowalla"): dict(pool_size=64, learning_rate=0.005, embed_dim=64,
                                  num_layers=3, l2=0.0001, beta=0.01),
    ("mf", "taobao"): dict(pool_size=8, learning_rate=0.001, embed_dim=32, l2=0.01,
                           beta=0.1),
    ("mf", "tmall"): dict(pool_size=32, learning_rate=0.001, embed_dim=32, l2=0.01,
                          beta=0.3),
    ("mf", "gowalla"): dict(pool_size=64, learning_rate=0.001, embed_dim=64, l2=0.01,
                            beta=0.2),
}
# The paper's random user subsets (Table 1), drawn from users with >= 10
# interactions; "smoke" draws 1,000.
SUBSET_USERS = {"taobao": 22_976, "tmall": 10_000}
VARIANTS = ("mf", "fn", "smoke")


def dataset_config(dataset: str, arg: str = ""):
  """configs/default.py with the paper's PDNS settings for `dataset`, unlocked.

  Args:
    dataset: a dataset with rows in TABLE.
    arg: the config argument, comma-separated VARIANTS ("" = LightGCN).

  Returns:
    The config, unlocked: the caller adds its own fields, then locks it.
  """
  variants = {v.strip() for v in arg.split(",") if v.strip()}
  if variants - set(VARIANTS):
    raise ValueError(f"configs/{dataset}.py: unknown variant(s) "
                     f"{sorted(variants - set(VARIANTS))}; use {', '.join(VARIANTS)}")
  c = default.get_config()
  c.unlock()
  c.dataset = dataset
  c.model = "mf" if "mf" in variants else "lightgcn"
  c.sampler = "pdns"
  c.update(TABLE[(c.model, dataset)])
  if dataset in SUBSET_USERS:
    c.subset.num_users = 1_000 if "smoke" in variants else SUBSET_USERS[dataset]
  if "fn" in variants:
    c.split = "fn"
  if "smoke" in variants:
    c.embed_dim, c.num_epochs, c.eval_every, c.progress = 8, 2, 1, False
  return c
