"""Every config field of pdns_jax, defined once. Dataset configs override a few.

Run: python -m pdns_jax.main --config=configs/synthetic.py --workdir=/tmp/run
Fields are locked: a misspelt override such as --config.lerning_rate fails.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Data.
  c.dataset = "synthetic"       # synthetic | ml100k | douban | gowalla | taobao | tmall
  c.data_dir = ""               # root holding the dataset folders; "" = $PDNS_DATA_DIR or ~/.cache/pdns_jax/data
  c.split = "paper"             # paper (PAPER.md 5) | fn (4:1:1 train/test/false negatives)
  c.data_seed = 0               # seeds random splits and the synthetic generator
  c.valid_order = "time"        # temporal split: valid = latest ninth of the rest (time) | a random ninth
  # kind: planted (low-rank, U x I scores: small sizes) | zipf (web-scale logs,
  # linear in num_interactions; Zipf user/item exponents; memory_budget_gb 0 =
  # MemAvailable, checked before allocating). rank, mean_degree: planted only.
  c.synthetic = ml_collections.ConfigDict(
      dict(num_users=600, num_items=1000, rank=8, mean_degree=40.0, kind="planted",
           num_interactions=0, user_exponent=0.6, item_exponent=0.8,
           memory_budget_gb=0.0))
  # Users subset for the large raw Tianchi files (PAPER.md 4): 0 = keep all.
  c.subset = ml_collections.ConfigDict(dict(num_users=0, min_interactions=10))
  # Model (PAPER.md 3).
  c.model = "lightgcn"          # mf | lightgcn
  c.num_layers = 3
  c.embed_dim = 64
  # LightGCN's sparse product: auto (ell on CPU from 50k entries, else segment_sum) | ell
  # (degree-bucketed padded rows, no scatter) | segment_sum | bcoo | bcsr.
  c.propagation = "auto"
  # Sampler and loss (PAPER.md 2).
  c.sampler = "pdns"            # rns | dns | pdns | mix | mixgcf (pdns = dns + soft_bpr)
  c.loss = "auto"               # auto (the sampler's own: soft_bpr for pdns, else bpr) | bpr | soft_bpr
  c.pool_size = 32              # H, candidates per positive
  c.beta = 0.1                  # soft BPR factor (pdns), Eq. 10
  c.alpha = 0.9                 # fixed positive-mixing coefficient (mix), Eq. 4
  # The baselines' own knobs (../shared/BASELINES.md), read only by their sampler.
  c.srns = ml_collections.ConfigDict(dict(
      num_candidates=3000, memory=8, fresh=64, alpha=5.0, warmup_epochs=50, tau=10.0,
      history=5, history_dtype="float32"))  # history_dtype: float32 | bfloat16 (halves U x C x W)
  c.gdns = ml_collections.ConfigDict(dict(num_candidates=1000, positives=16, decay=0.9,
                                          gamma=1.0))
  c.adasir = ml_collections.ConfigDict(dict(pool=50, proposals=200, samples=5))
  c.irgan = ml_collections.ConfigDict(dict(temperature=0.2, samples=5, candidates=0,
                                           learning_rate=0.001, l2=0.0001))
  c.advir = ml_collections.ConfigDict(dict(eps=0.5, adv_weight=1.0))
  c.pretrain_epochs = 0         # RNS epochs before a GAN sampler (irgan, advir) starts
  c.init_from = ""              # or start from this earlier run's best parameters (a workdir)
  # Optimisation (PAPER.md 7).
  c.learning_rate = 0.001
  c.l2 = 0.0001                 # lambda on the batch's layer-0 embeddings
  c.batch_size = 2048
  c.num_epochs = 300
  c.eval_every = 5
  c.patience = 10               # evaluations without a better valid Recall@50
  c.seed = 0
  c.topk = (20, 50)
  c.eval_batch_size = 1024      # users scored at once in full-rank evaluation
  c.eval_item_chunk = 65536     # items scored at once (running top-K): memory batch x chunk; 0 = all
  # Devices: "" = one device; "data=N" splits each run over N devices (-1: all).
  c.mesh = ""
  # Several processes (jax.distributed; README "Several processes"): start the
  # same command once per process, each with its process_id (0 = coordinator,
  # which listens at coordinator_address, host:port); num_processes 1 = off.
  # A process whose peer dies ends after about timeout_s seconds (heartbeats);
  # joining the coordinator waits as long.
  c.distributed = ml_collections.ConfigDict(dict(
      coordinator_address="", num_processes=1, process_id=0, timeout_s=60))
  # Many runs in one program: replicas differ in seed (and the swept fields).
  c.num_replicas = 1            # seeds seed, seed+1, ...
  c.replica_sweep = ""          # e.g. "beta=0.05,0.1;l2=0.001,0.01" (crossed with seeds)
  # False-negative simulation (PAPER.md 8.3); needs split="fn".
  c.reveal_fraction = 0.0       # c: share of the FN set revealed to the sampler in the end
  c.reveal_start = -1           # epoch of the first reveal; -1 = first evaluation after the valid peak
  c.reveal_every = 50           # epochs between 20% reveals
  # Outputs.
  c.checkpoint_every = 1        # save the latest state every this many evaluations
  c.progress = True             # tqdm bar per epoch
  c.tensorboard = True          # event file in the workdir
  # Resuming a workdir with other values of fields beyond num_epochs, patience,
  # eval_every, checkpoint_every, progress, tensorboard, eval_batch_size is
  # refused unless they are listed here ("field,field"), e.g. learning_rate.
  c.resume_changes = ""
  return c.lock()
