"""CPU epoch time side by side: pdns_jax against gusye1234/LightGCN-PyTorch.

Writes our training split of a dataset in the peer's format (train.txt and
test.txt, "user item item ..." per line) into a scratch folder, starts the
peer (its own Loader, LightGCN, BPRLoss and `Procedure.BPR_train_original`,
the function its main loop calls each epoch, with its C++ sampler when
cppimport can build it) in its own Python, and alternates: one peer epoch, one
epoch of ours per sampler, and so on. The peer's evaluation is not run; only
training epochs are timed on both sides (ours: the jitted epoch, waited for).
LightGCN d 64, 3 layers, batch 2048, lr 0.001, l2 1e-4 on both sides.

Set-up (the peer's torch in its own venv, the project's environment untouched):
  python -m venv /tmp/peer_venv
  /tmp/peer_venv/bin/pip install torch numpy scipy pandas scikit-learn tensorboardX \
      cppimport pybind11 tqdm          # torch: the CPU wheel
  # the peer's code/ folder, e.g. git archive of github.com/gusye1234/LightGCN-PyTorch
Run (repo root; PDNS_DATA_DIR=/work/shared/data):
  python launch/peer_lightgcn.py --dataset=ml100k --epochs=5 \
      --peer_code=/tmp/peer/code --peer_python=/tmp/peer_venv/bin/python
  python launch/peer_lightgcn.py --dataset=gowalla --epochs=2 ...
Prints per round `peer_epoch_seconds`, `ours_<sampler>_epoch_seconds`, then
medians, the ratios peer / ours, the threads (torch.get_num_threads, and
XLA's CPU devices and the cores it may use) and the load average.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

from absl import app
from absl import flags
import jax
import numpy as np

from pdns_jax import program as program_lib

DATASET = flags.DEFINE_enum("dataset", "ml100k", ["ml100k", "gowalla"], "Dataset.")
EPOCHS = flags.DEFINE_integer("epochs", 3, "Timed epochs per side (after a warm-up).",
                              lower_bound=1)
SAMPLERS = flags.DEFINE_list("samplers", ["rns", "pdns"], "Our samplers to time.")
POOL = flags.DEFINE_integer("pool_size", 32, "H for our dns/pdns.")
PEER_CODE = flags.DEFINE_string("peer_code", "/tmp/peer/code", "The peer's code/ folder.")
PEER_PYTHON = flags.DEFINE_string("peer_python", "/tmp/peer_venv/bin/python",
                                  "A Python with torch and the peer's imports.")
SCRATCH = flags.DEFINE_string("scratch", "/tmp/peer_data", "Where the peer's files go.")
PEER_WARMUP = flags.DEFINE_bool("peer_warmup", True, "Run one untimed peer epoch first.")
PEER_THREADS = flags.DEFINE_integer("peer_threads", 0, "torch.set_num_threads for the peer; "
                                    "0 = torch's default (the cores).", lower_bound=0)

# Runs inside the peer's Python, in its code/ folder: one training epoch per
# line read on stdin, its seconds printed as one JSON line.
PEER_DRIVER = r"""
import json, sys, time
data_dir, threads = sys.argv[1], int(sys.argv[2])
sys.argv = [sys.argv[0], "--dataset=gowalla", "--model=lgn", "--recdim=64", "--layer=3",
            "--bpr_batch=2048", "--lr=0.001", "--decay=1e-4", "--tensorboard=0"]
import torch, world, utils, dataloader, model, Procedure
if threads:
  torch.set_num_threads(threads)
utils.set_seed(world.seed)
dataset = dataloader.Loader(path=data_dir)
net = model.LightGCN(world.config, dataset).to(world.device)
loss = utils.BPRLoss(net, world.config)
print(json.dumps({"threads": torch.get_num_threads(), "cpp_sampler": utils.sample_ext,
                  "torch": torch.__version__, "train": dataset.trainDataSize,
                  "users": dataset.n_users, "items": dataset.m_items}), flush=True)
epoch = 0
for line in sys.stdin:
  start = time.time()
  info = Procedure.BPR_train_original(dataset, net, loss, epoch, neg_k=1, w=None)
  print(json.dumps({"seconds": time.time() - start, "info": info}), flush=True)
  epoch += 1
"""


def write_peer_files(split, folder: pathlib.Path) -> None:
  """train.txt and test.txt, one "user item item ..." line per user with items."""
  folder.mkdir(parents=True, exist_ok=True)
  for name, pairs in (("train.txt", split.train), ("test.txt", split.test)):
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    users, starts = np.unique(pairs[:, 0], return_index=True)
    lines = [" ".join(map(str, [u, *items])) for u, items in
             zip(users, np.split(pairs[:, 1], starts[1:]))]
    (folder / name).write_text("\n".join(lines) + "\n")
  cached = folder / "s_pre_adj_mat.npz"  # the peer's cached graph, of older files
  cached.unlink(missing_ok=True)


class Peer:
  """The peer's process; `epoch()` runs one training epoch and returns its seconds."""

  def __init__(self, folder: pathlib.Path):
    self.process = subprocess.Popen(
        [PEER_PYTHON.value, "-c", PEER_DRIVER, str(folder), str(PEER_THREADS.value)], cwd=PEER_CODE.value,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    self.info = self._read()

  def _read(self) -> dict:
    for line in self.process.stdout:
      if line.startswith("{"):
        return json.loads(line)
      print(f"peer| {line.rstrip()}", flush=True)
    raise RuntimeError(f"the peer ended (status {self.process.wait()})")

  def epoch(self) -> float:
    self.process.stdin.write("go\n")
    self.process.stdin.flush()
    return self._read()["seconds"]

  def close(self) -> None:
    self.process.stdin.close()
    self.process.wait()


def ours(dataset: str, sampler: str):
  """(epoch function of no arguments, split) for our LightGCN at the peer's shapes."""
  from configs import paper_settings  # pylint: disable=import-outside-toplevel
  config = paper_settings.dataset_config(dataset, "")
  config.unlock()
  config.update(dict(model="lightgcn", embed_dim=64, num_layers=3, batch_size=2048,
                     learning_rate=0.001, l2=1e-4, sampler=sampler, pool_size=POOL.value,
                     progress=False, tensorboard=False))
  program = program_lib.build_program(config)
  state, data = [program.init_state()], program.train_data()

  def epoch() -> float:
    start = time.time()
    state[0], _ = program.epoch_fn(state[0], program.hparams, data, program.graph)
    jax.block_until_ready(state[0])
    return time.time() - start
  return epoch, program


def main(argv):
  del argv
  os.environ.setdefault("PDNS_DATA_DIR", "/work/shared/data")
  runs = {}
  for sampler in SAMPLERS.value:
    epoch, program = ours(DATASET.value, sampler)
    start = time.time()
    epoch()
    print(f"ours_{sampler}_compile_and_first_epoch_seconds: {time.time() - start:.2f}  "
          f"(propagation {program.spec.model.propagation})", flush=True)
    runs[sampler] = epoch
  folder = pathlib.Path(SCRATCH.value) / DATASET.value
  write_peer_files(program.split, folder)
  peer = Peer(folder)
  print(f"peer: {json.dumps(peer.info)}", flush=True)
  print(f"ours: train {len(program.split.train)} users {program.split.num_users} "
        f"items {program.split.num_items}; jax {jax.__version__} backend "
        f"{jax.default_backend()} devices {jax.device_count()} cores usable "
        f"{len(os.sched_getaffinity(0))} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        flush=True)
  if PEER_WARMUP.value:
    print(f"peer_warmup_epoch_seconds: {peer.epoch():.2f}", flush=True)
  times = {"peer": [], **{s: [] for s in runs}}
  for round_ in range(EPOCHS.value):
    times["peer"].append(peer.epoch())
    print(f"round {round_} load {os.getloadavg()[0]:.2f} peer_epoch_seconds: "
          f"{times['peer'][-1]:.2f}", flush=True)
    for sampler, epoch in runs.items():
      times[sampler].append(epoch())
      print(f"round {round_} load {os.getloadavg()[0]:.2f} ours_{sampler}_epoch_seconds: "
            f"{times[sampler][-1]:.2f}", flush=True)
  peer.close()
  peer_median = float(np.median(times["peer"]))
  print(f"peer_median_epoch_seconds: {peer_median:.2f} (torch threads "
        f"{peer.info['threads']}, C++ sampler {peer.info['cpp_sampler']})")
  for sampler in runs:
    median = float(np.median(times[sampler]))
    print(f"ours_{sampler}_median_epoch_seconds: {median:.2f}  ratio peer/ours: "
          f"{peer_median / median:.2f}")
  print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
  app.run(main)
