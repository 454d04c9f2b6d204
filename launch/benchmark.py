"""Speed of one training setup: compile, epoch, evaluation, replicas, graph, propagation.

Builds what `train.train_and_evaluate` builds for a config
(`program.build_program`: split, graph, model, jitted vmapped epoch, jitted
evaluation), then times: the compile, a warm-up epoch, N epochs and M full
evaluations, always waiting for the device (`block_until_ready`) before
reading the clock. It prints one `name: value`
line per figure, so scripts and tests can parse it.

Runs (from the repo root; PDNS_DATA_DIR=/work/shared/data or wherever the data is):
  python launch/benchmark.py --config=configs/ml100k.py
  python launch/benchmark.py --config=configs/ml100k.py --replicas=30 --epochs=1
  python launch/benchmark.py --config=configs/ml100k.py --propagation_compare --epochs=0
  # a random graph of any size in place of the config's data (Gowalla's shape here):
  python launch/benchmark.py --config=configs/gowalla.py \
      --synthetic_users=29858 --synthetic_items=40981 --synthetic_interactions=810128
  # graph construction only, at scale:
  python launch/benchmark.py --config=configs/default.py --graph_only \
      --synthetic_users=1000000 --synthetic_items=1000000 --synthetic_interactions=50000000

Figures on the development machine's 2-core CPU (shared, load 3-6; medians):
  ml100k LightGCN d=32 H=32: compile 5.3 s, epoch 0.98 s, evaluation (valid +
    test) 0.05-0.11 s, test set alone 0.02 s; 30 replicas: 38.3 s per vmapped
    epoch against 30 x 1.31 s sequential (speedup 1.03: a CPU is already busy).
  Gowalla LightGCN d=64 H=64 (720,561 training pairs): epoch 188 s, evaluation
    5.9 s, test set alone 3.5 s.
  Graph of 1M users x 1M items x 50M training pairs (100M edges): 3-8 s, 3.6 GB
    peak RSS for the whole process.
launch/gpu_check.sh measures the GPU targets.

Lines printed: backend, devices, data, shapes (users, items, train interactions,
embed_dim, layers, pool_size, batch_size, replicas), compile_seconds (train
epoch), eval_compile_seconds, train_epoch_seconds (median of N), eval_seconds
(median of M; valid + test, which is what the loop runs per evaluation),
eval_test_seconds (test set only), eval_users, steps_per_second (mini-batch
updates of one replica per second, summed over replicas), peak_memory_bytes and
peak_memory_source; with --replicas: replicas, single_epoch_seconds,
vmapped_epoch_seconds, sequential_epoch_seconds, replica_speedup; with --propagation_compare:
propagation_<method>_seconds; with --graph_only: graph_edges,
graph_build_seconds, graph_peak_rss_bytes (graph_edges: stored entries of the
normalised adjacency, both directions). A bad flag or config value stops with
one `error:` line and exit status 2.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import pathlib
import re
import resource
import subprocess
import sys
import time
from typing import Any, Callable

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

from pdns_jax import cli
from pdns_jax import data as data_lib
from pdns_jax import evaluate as eval_lib
from pdns_jax import graph as graph_lib
from pdns_jax import mesh as mesh_lib
from pdns_jax import models
from pdns_jax import program as program_lib
from pdns_jax import samplers
from pdns_jax import step as step_lib
from pdns_jax.data import core as data_core
from pdns_jax.data import synthetic

# Item popularity of the random graph: item = floor(num_items * u ** ITEM_SKEW),
# u uniform, so the density falls as x^(1/ITEM_SKEW - 1): a long tail like
# check-in and click data, without the dense matrix of the planted generator.
ITEM_SKEW = 3
TRAIN_SHARE, VALID_SHARE = 0.8, 0.1


# ----------------------------------------------------------------------------
# Data: the config's split, or a random graph of any size.


def random_split(num_users: int, num_items: int, num_train: int,
                 seed: int) -> data_lib.Split:
  """A random interaction graph split 80/10/10, in memory linear in interactions.

  Users are uniform, items long-tailed (ITEM_SKEW); pairs are deduplicated as
  int64 keys user * num_items + item and topped up until there are enough.
  (Sort and compare, not np.unique: numpy 2.4's unique takes ~40x longer.)

  Args:
    num_users, num_items: sizes.
    num_train: training interactions wanted (exactly this many).
    seed: seeds every draw.

  Returns:
    A `Split` with train/valid/test sorted by (user, item) and no FN set.
  """
  total = math.ceil(num_train / TRAIN_SHARE)
  if min(num_users, num_items, num_train) < 1 or total > num_users * num_items // 2:
    raise data_lib.DataError(
        "--synthetic_users/items/interactions: need positive sizes and at most "
        f"{TRAIN_SHARE / 2:.0%} of the {num_users} x {num_items} pairs as training pairs")
  rng = np.random.default_rng(seed)
  item_ids = rng.permutation(num_items)  # popular items get scattered ids
  keys = np.empty(0, np.int64)
  while len(keys) < total:
    draw = int((total - len(keys)) * 1.2) + 16  # repeats are dropped below
    users = rng.integers(0, num_users, draw, dtype=np.int64)
    items = item_ids[(num_items * rng.random(draw) ** ITEM_SKEW).astype(np.int64)]
    keys = np.sort(np.concatenate([keys, users * num_items + items]))
    del users, items
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
  surplus = rng.choice(len(keys), len(keys) - total, replace=False)
  keys = np.delete(keys, surplus)
  part = np.empty(total, np.int8)  # 0 train, 1 valid, 2 test
  order = rng.permutation(total)
  num_valid = round(total * VALID_SHARE)
  part[order[:num_train]] = 0
  part[order[num_train:num_train + num_valid]] = 1
  part[order[num_train + num_valid:]] = 2
  del order

  def pairs(which: int) -> np.ndarray:
    chosen = keys[part == which]
    return np.stack([chosen // num_items, chosen % num_items], 1).astype(np.int32)

  split = data_lib.Split(
      num_users=num_users, num_items=num_items, train=pairs(0), valid=pairs(1),
      test=pairs(2), fn=np.zeros((0, 2), np.int32),
      name=f"random_{num_users}x{num_items}x{num_train}",
      description="random 80/10/10 train/valid/test split",
      source=(f"launch/benchmark.py random graph (seed {seed}): users uniform, "
              f"items long-tailed (u^{ITEM_SKEW})"))
  data_core.check_split(split)
  return split


def benchmark_split(config, num_users: int = 0, num_items: int = 0,
                    num_train: int = 0) -> data_lib.Split:
  """A random graph of these sizes if any is set, else the config's own split."""
  if num_users or num_items or num_train:
    return random_split(num_users, num_items, num_train, seed=config.data_seed)
  return data_lib.load_split(config)


def training_graph(split: data_lib.Split, ell: bool | None = None) -> dict:
  """The normalised adjacency of the split's training pairs, on device
  (with the ELL layout where `ell`, or where "auto" would use it)."""
  return graph_lib.device_graph(graph_lib.normalized_adjacency(
      split.train, split.num_users, split.num_items), ell=ell)


# ----------------------------------------------------------------------------
# Timing.


def _timed(fn: Callable, *args) -> tuple[Any, float]:
  """(fn(*args), seconds), waiting for every output to be computed."""
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def _compiled(jitted: Callable, *args) -> tuple[Callable, float]:
  """Ahead-of-time compiles `jitted` for these arguments: (executable, seconds)."""
  start = time.perf_counter()
  executable = jitted.lower(*args).compile()
  return executable, time.perf_counter() - start


def time_program(program: program_lib.Program, *, epochs: int, warmup: int,
                 eval_repeats: int) -> dict:
  """Compiles and times the program's epoch and evaluation, as the trainer calls them.

  Returns:
    {"compile_seconds", "train_epoch_seconds", "steps_per_second"} when epochs
    > 0, and {"eval_compile_seconds", "eval_seconds", "eval_test_seconds"} when
    eval_repeats > 0 (medians of the timed calls).
  """
  out = {}
  state, data = program.init_state(), program.train_data()
  hparams, graph = program.hparams, program.graph
  if epochs > 0:
    epoch, out["compile_seconds"] = _compiled(program.epoch_fn, state, hparams, data, graph)
    _print("epoch_compiled_seconds", out["compile_seconds"])  # as it goes: a cut-off run
    seconds = []                                               # still says how far it got
    for i in range(warmup + epochs):
      (state, _), elapsed = _timed(epoch, state, hparams, data, graph)
      _print(f"epoch_{i}_seconds", elapsed)
      if i >= warmup:
        seconds.append(elapsed)
    out["train_epoch_seconds"] = float(np.median(seconds))
    num_batches = -(-program.spec.num_train // program.spec.batch_size)
    out["steps_per_second"] = (num_batches * len(program.settings) /
                               out["train_epoch_seconds"])
  if eval_repeats > 0:
    valid, test = program.valid_set, program.test_set
    evaluate, out["eval_compile_seconds"] = _compiled(
        program.eval_fn, state.params, graph, valid, test)
    model, topk = program.spec.model, program.topk
    chunk = program.config.eval_item_chunk
    test_only, _ = _compiled(jax.jit(jax.vmap(
        lambda params, graph, test: eval_lib.evaluate(*model.embed(params, graph), test, topk,
                                                      item_chunk=chunk),
        in_axes=(0, None, None))), state.params, graph, test)
    for name, fn, args in (("eval_seconds", evaluate, (state.params, graph, valid, test)),
                           ("eval_test_seconds", test_only, (state.params, graph, test))):
      seconds = [_timed(fn, *args)[1] for _ in range(warmup + eval_repeats)]
      out[name] = float(np.median(seconds[warmup:]))
  return out


def propagation_seconds(model: models.Model, graph: dict, repeats: int) -> dict:
  """Median seconds of one LightGCN forward + backward pass (all layers) per method.

  The methods take turns in each round, so a change in machine load hits all alike.

  Returns:
    {method: seconds} for each named method of graph.PROPAGATIONS but "auto"
    ("ell" where the graph has its layout).
  """
  params = model.init(jax.random.PRNGKey(0))
  steps = {}
  for method in graph_lib.PROPAGATIONS:
    if method == "auto" or (method == "ell" and "ell" not in graph):
      continue
    lightgcn = dataclasses.replace(model, kind="lightgcn", propagation=method)

    def loss(params, graph, lightgcn=lightgcn):
      users, items = lightgcn.embed(params, graph)
      return jnp.sum(users * users) + jnp.sum(items * items)

    # The graph is an argument, not a closed-over constant that XLA would fold.
    steps[method] = jax.jit(jax.value_and_grad(loss))
    _timed(steps[method], params, graph)  # compile
  seconds = {method: [] for method in steps}
  for _ in range(repeats):
    for method, step in steps.items():
      seconds[method].append(_timed(step, params, graph)[1])
  return {method: float(np.median(s)) for method, s in seconds.items()}


def replica_config(config, num_replicas: int):
  """The config with `num_replicas` seeds and no hyper-parameter sweep."""
  config = copy.deepcopy(config)
  config.num_replicas = num_replicas
  config.replica_sweep = ""
  return config


# ----------------------------------------------------------------------------
# Memory.


def _rss_peak_reset() -> bool:
  """Restarts the kernel's peak-RSS counter (VmHWM) where Linux allows it."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _max_rss_bytes() -> int:
  """Peak resident memory of this process over its whole life."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _rss_peak_bytes() -> int:
  """Peak resident memory of this process: VmHWM (resettable), else ru_maxrss."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return _max_rss_bytes()


def peak_memory() -> tuple[int, str]:
  """(bytes, source): the device's peak if the backend reports it, else host RSS."""
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
  return _max_rss_bytes(), "host peak RSS (ru_maxrss)"


# ----------------------------------------------------------------------------
# Scaling: epoch, evaluation and memory against the number of interactions.

# Users and items per size: num_interactions / SCALING_DEGREE each, so the mean
# degree stays at the web config's 50 (1M x 1M x 50M) and every table grows
# linearly with the interactions.
SCALING_DEGREE = 50
SCALING_MODELS = ("mf", "lightgcn")


def scaling_config(config, num_interactions: int, model: str):
  """The zipf config of one scaling point: d 64, batch 2048, PDNS H 32, paper split."""
  config = copy.deepcopy(config)
  size = max(num_interactions // SCALING_DEGREE, 1)
  config.dataset, config.split, config.model, config.sampler = "synthetic", "paper", model, "pdns"
  config.synthetic.kind = "zipf"
  config.synthetic.num_users = config.synthetic.num_items = size
  config.synthetic.num_interactions = num_interactions
  config.embed_dim, config.batch_size, config.pool_size = 64, 2048, 32
  config.num_replicas, config.replica_sweep = 1, ""
  return config


def sample_eval_set(split: data_lib.Split, num_users: int, batch_size: int,
                    seed: int) -> tuple[eval_lib.EvalSet, int]:
  """The test evaluation of a fixed random sample of `num_users` test users.

  Returns:
    (the EvalSet, the number of test users it samples from).
  """
  test_users = np.unique(split.test[:, 0])
  chosen = np.random.default_rng(seed).choice(
      test_users, min(num_users, len(test_users)), replace=False)
  keep = np.zeros(split.num_users, bool)
  keep[chosen] = True
  data = eval_lib.eval_set(targets=split.test[keep[split.test[:, 0]]],
                           excluded=[split.train, split.valid], num_users=split.num_users,
                           batch_size=batch_size)
  return data, len(test_users)


def time_scaling_model(config, split: data_lib.Split, *, steps: int,
                       eval_users: int) -> dict:
  """Times `steps` training steps (extrapolated to an epoch) and a sampled evaluation.

  The epoch program runs over the first steps x batch_size training pairs
  (shuffled) with the full graph, tables and exclusion sets, so one step costs
  what it costs in a full epoch; it runs once untimed after compiling, then
  once timed.

  Returns:
    {"epoch_seconds", "step_seconds", "eval_seconds" (the sample),
     "eval_all_seconds" (scaled to every test user), "eval_users",
     "compile_seconds"}.
  """
  program = program_lib.build_program(config, split)
  spec = program.spec
  steps = max(1, min(steps, -(-spec.num_train // spec.batch_size)))
  short = dataclasses.replace(spec, num_train=min(spec.num_train, steps * spec.batch_size))
  epoch_fn = jax.jit(jax.vmap(functools.partial(step_lib.train_epoch, spec=short),
                              in_axes=(0, 0, None, None)), donate_argnums=0)
  state, data, graph = program.init_state(), program.train_data(), program.graph
  epoch, compile_seconds = _compiled(epoch_fn, state, program.hparams, data, graph)
  (state, _), _ = _timed(epoch, state, program.hparams, data, graph)
  (state, _), seconds = _timed(epoch, state, program.hparams, data, graph)
  step_seconds = seconds / steps
  num_batches = -(-spec.num_train // spec.batch_size)

  test, num_test_users = sample_eval_set(split, eval_users, config.eval_batch_size,
                                         config.data_seed)
  model, topk, chunk = spec.model, program.topk, config.eval_item_chunk
  params = jax.tree_util.tree_map(lambda x: x[0], state.params)
  evaluate, _ = _compiled(jax.jit(
      lambda params, graph, test: eval_lib.evaluate(*model.embed(params, graph), test, topk,
                                                    item_chunk=chunk)), params, graph, test)
  _timed(evaluate, params, graph, test)
  _, eval_seconds = _timed(evaluate, params, graph, test)
  sampled = int(jnp.sum(test.real))
  return {"epoch_seconds": step_seconds * num_batches, "step_seconds": step_seconds,
          "eval_seconds": eval_seconds,
          "eval_all_seconds": eval_seconds * num_test_users / max(sampled, 1),
          "eval_users": sampled, "compile_seconds": compile_seconds}


def scaling_point(config, num_interactions: int, *, models: tuple[str, ...], steps: int,
                  eval_users: int) -> None:
  """Measures one size (run in its own process, so its peak RSS is its own).

  Prints one `scaling_row:` line per model: key=value pairs.
  """
  first = scaling_config(config, num_interactions, models[0])
  split, data_seconds = _timed(data_lib.load_split, first, False)
  _print("data", f"{split.name}: {split.num_users} users x {split.num_items} items, "
         f"{len(split.train)} train pairs ({data_seconds:.1f} s to generate and split)")
  for model in models:
    _rss_peak_reset()
    row = time_scaling_model(scaling_config(config, num_interactions, model), split,
                             steps=steps, eval_users=eval_users)
    mesh = mesh_lib.make_mesh(config.mesh)
    row.update(interactions=num_interactions, model=model,
               devices=1 if mesh is None else mesh.size, users=split.num_users,
               items=split.num_items, train=len(split.train), data_seconds=data_seconds,
               peak_rss_bytes=_rss_peak_bytes())
    print("scaling_row: " + " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in row.items()), flush=True)


def fitted_exponent(sizes, seconds) -> float:
  """Slope of log(seconds) against log(sizes): seconds ∝ size^slope."""
  if len(sizes) < 2:
    return float("nan")
  return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def _predicted_peak(rows: list[dict], num_interactions: int,
                    devices: int) -> tuple[int, str]:
  """Peak RSS expected at this size on `devices`: linear from the largest point
  measured on as many devices, else the data's own estimate."""
  rows = [r for r in rows if r.get("devices", 1) == devices]
  if rows:
    largest = max(rows, key=lambda r: r["interactions"])
    per = max(r["peak_rss_bytes"] for r in rows if r["interactions"] == largest["interactions"])
    return (int(1.2 * per / largest["interactions"] * num_interactions),
            f"1.2 x linear from the {largest['interactions']:,}-interaction point")
  size = max(num_interactions // SCALING_DEGREE, 1)
  return (2 * synthetic.zipf_memory_estimate(size, size, num_interactions),
          "2 x the data's own estimate")


def _scaling_table(rows: list[dict]) -> list[str]:
  lines = ["| interactions | model | devices | users = items | train pairs | epoch s | "
           "step s | eval s (sample) | users sampled | eval s (all, scaled) | "
           "peak RSS GiB |", "|" + "---|" * 11]
  for r in rows:
    lines.append(
        f"| {r['interactions']:,} | {r['model']} | {r.get('devices', 1)} | {r['users']:,} | "
        f"{r['train']:,} | "
        f"{r['epoch_seconds']:.3g} | {r['step_seconds']:.3g} | {r['eval_seconds']:.3g} | "
        f"{r['eval_users']:,} | {r['eval_all_seconds']:.3g} | "
        f"{r['peak_rss_bytes'] / 2**30:.2f} |")
  return lines


def write_scaling(rows: list[dict], exponents: dict, out_dir: str, command: str,
                  notes: list[str], steps: int, eval_users: int) -> None:
  """scaling.md (command, table, exponents, notes) and scaling.png (log-log)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, key, title in ((axes[0], "epoch_seconds", "epoch (extrapolated)"),
                         (axes[1], "eval_seconds", f"evaluation ({eval_users} users)")):
    for group in exponents:
      mine = [r for r in rows if _group(r) == group]
      sizes = [r["interactions"] for r in mine]
      ax.loglog(sizes, [r[key] for r in mine], "o-",
                label=f"{group} (exponent {exponents[group][key]:.2f})")
    ax.set_xlabel("interactions")
    ax.set_ylabel("seconds")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(out / "scaling.png", dpi=120)
  plt.close(fig)
  text = ["# Scaling with the number of interactions", "",
          f"Command (from the repo root, {jax.default_backend()}, "
          f"{jax.device_count()} device(s), {os.cpu_count()} CPU cores):", "",
          f"    {command}", "",
          "Zipf data (`config.synthetic.kind = \"zipf\"`, user exponent 0.6, item "
          f"exponent 0.8), users = items = interactions / {SCALING_DEGREE}, paper split "
          "(random 8:1:1); PDNS H 32, d 64, batch 2048. Epoch seconds: "
          f"{steps} timed steps (after one untimed run of them) times the steps of an "
          f"epoch. Evaluation: test Recall/NDCG of a fixed random sample of {eval_users} "
          "test users, items in chunks of config.eval_item_chunk (embeddings "
          "computed inside, so LightGCN's includes one propagation); the scaled column "
          "multiplies by the number of test users. Peak RSS: VmHWM of the point's own "
          "process (reset before each model), so it includes the data.", "",
          *_scaling_table(rows), "",
          "Fitted exponents (seconds ∝ interactions^e):", ""]
  for group, fits in exponents.items():
    text.append(f"- {group}: epoch {fits['epoch_seconds']:.2f}, step "
                f"{fits['step_seconds']:.2f}, evaluation {fits['eval_seconds']:.2f}")
  text += ["", "An epoch has steps in proportion to the interactions and every step "
           "touches whole tables (Adam's dense update of both embedding tables; "
           "LightGCN's propagation over every edge), so epoch seconds grow about as "
           "the square: the step exponent is the per-step cost."]
  text += ["", *[f"- {n}" for n in notes]] if notes else []
  (out / "scaling.md").write_text("\n".join(text) + "\n")


def _scaling_run(size: int, devices: int, *, models: tuple[str, ...], steps: int,
                 eval_users: int, timeout: int) -> tuple[list[dict], str]:
  """One size on `devices` (forced host) devices in its own process.

  Returns:
    (its rows, "") or ([], why it was skipped).
  """
  argv = [sys.executable, os.path.abspath(__file__), f"--scaling_point={size}",
          f"--scaling_models={','.join(models)}", f"--scaling_steps={steps}",
          f"--scaling_eval_users={eval_users}"] + [
              a for a in sys.argv[1:] if a.startswith("--config")]
  env = dict(os.environ)
  if devices > 1:
    argv.append(f"--config.mesh=data={devices}")
    if jax.default_backend() == "cpu":
      env["XLA_FLAGS"] = " ".join(
          [env.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={devices}"])
  where = f"{size:,} interactions on {devices} device(s)"
  try:
    done = subprocess.run(argv, text=True, capture_output=True, timeout=timeout, env=env,
                          check=False)
  except subprocess.TimeoutExpired:
    return [], f"skipped {where}: ran past {timeout} s"
  found = re.findall(r"^scaling_row: (.*)$", done.stdout, re.M)
  if done.returncode != 0 or not found:
    return [], (f"skipped {where}: exit status {done.returncode}: "
                f"{done.stderr.strip().splitlines()[-1:] or ''}")
  rows = []
  for line in found:
    row = {}
    for pair in line.split():
      key, value = pair.split("=", 1)
      row[key] = value if key == "model" else float(value)
    for key in ("interactions", "devices", "users", "items", "train", "eval_users",
                "peak_rss_bytes"):
      row[key] = int(row[key])
    rows.append(row)
  return rows, ""


def scaling(config, sizes: list[int], *, models: tuple[str, ...], steps: int,
            eval_users: int, devices: list[int], out_dir: str, point_timeout: int,
            command: str) -> None:
  """Runs each size in its own process, prints the table and exponents, writes results.

  A size whose predicted peak exceeds the memory available now, or whose
  process fails or runs past `point_timeout`, is skipped with its reason printed.
  """
  notes, rows, stopped = [], [], set()
  for size in sizes:
    for count in devices:
      if count in stopped:
        continue
      predicted, how = _predicted_peak(rows, size, count)
      available = synthetic.available_memory()
      if available and predicted > available:
        reason = (f"skipped {size:,} interactions on {count} device(s): predicted peak "
                  f"{predicted / 2**30:.1f} GiB ({how}) > {available / 2**30:.1f} GiB "
                  "available")
        _print("scaling_skip", reason)
        notes.append(reason)
        continue
      found, reason = _scaling_run(size, count, models=models, steps=steps,
                                   eval_users=eval_users, timeout=point_timeout)
      if reason:
        _print("scaling_skip", reason)
        notes.append(reason)
        if "ran past" in reason:
          stopped.add(count)  # larger sizes take longer still
        continue
      for row in found:
        rows.append(row)
        _print("scaling_point", f"{size} {row['model']} devices={row['devices']} "
               f"epoch_seconds={row['epoch_seconds']:.4g} "
               f"eval_seconds={row['eval_seconds']:.4g} "
               f"peak_rss_gib={row['peak_rss_bytes'] / 2**30:.3g}")
    if rows:  # written after every size, so a later one that is stopped loses nothing
      write_scaling(rows, _exponents(rows), out_dir, command, notes, steps, eval_users)
  if not rows:
    raise data_lib.DataError("--scaling: no size could be measured")
  for line in _scaling_table(rows):
    print(line)
  for group, fits in _exponents(rows).items():
    name = group.replace(" devices", "").replace(" ", "_")
    _print(f"scaling_exponent_{name}_epoch", fits["epoch_seconds"])
    _print(f"scaling_exponent_{name}_step", fits["step_seconds"])
    _print(f"scaling_exponent_{name}_eval", fits["eval_seconds"])
  write_scaling(rows, _exponents(rows), out_dir, command, notes, steps, eval_users)
  _print("scaling_results", f"{out_dir}/scaling.md, {out_dir}/scaling.png")


def _group(row: dict) -> str:
  """The curve a row belongs to: its model, and its device count when over one."""
  devices = row.get("devices", 1)
  return row["model"] if devices == 1 else f"{row['model']} x{devices} devices"


def _exponents(rows: list[dict]) -> dict:
  """{curve: {"epoch_seconds": e, ...}} fitted over the sizes measured (see `_group`)."""
  exponents = {}
  for group in dict.fromkeys(map(_group, rows)):
    mine = [r for r in rows if _group(r) == group]
    exponents[group] = {key: fitted_exponent([r["interactions"] for r in mine],
                                             [r[key] for r in mine])
                        for key in ("epoch_seconds", "step_seconds", "eval_seconds")}
  return exponents


# ----------------------------------------------------------------------------
# Main.


def _print(name: str, value) -> None:
  if isinstance(value, float):
    value = f"{value:.6g}"
  print(f"{name}: {value}", flush=True)


def _shapes(config, split: data_lib.Split, replicas: int) -> str:
  return (f"users={split.num_users} items={split.num_items} train={len(split.train)} "
          f"embed_dim={config.embed_dim} layers={config.num_layers} "
          f"pool_size={config.pool_size} batch_size={config.batch_size} "
          f"replicas={replicas}")


def graph_only(config, split: data_lib.Split) -> None:
  """Times and measures normalized_adjacency + device_graph alone."""
  _print("shapes", _shapes(config, split, 0))
  reset = _rss_peak_reset()
  graph, seconds = _timed(training_graph, split)
  _print("graph_edges", int(graph["values"].shape[0]))
  _print("graph_build_seconds", seconds)
  _print("graph_peak_rss_bytes", _rss_peak_bytes())
  _print("graph_peak_rss_source", "VmHWM reset before the build" if reset
         else "whole process, including data generation")


def benchmark(config, split: data_lib.Split, *, epochs: int, warmup: int,
              eval_repeats: int, replicas: int = 0, propagation_compare: bool = False,
              propagation_repeats: int = 5) -> None:
  """Times the config's program, then the replica and propagation comparisons asked for.

  Args:
    config: the config to time.
    split: its data (or a random graph).
    epochs, warmup, eval_repeats: timed epochs, untimed calls, timed evaluations.
    replicas: if > 0, train this many seeds vmapped and compare with one seed
      trained as many times.
    propagation_compare: also time each LightGCN propagation method.
    propagation_repeats: timed calls per propagation method.
  """
  if replicas > 0:
    config = replica_config(config, replicas)
  program = program_lib.build_program(config, split)
  _print("shapes", _shapes(config, split, len(program.settings)))
  times = time_program(program, epochs=epochs, warmup=warmup, eval_repeats=eval_repeats)
  for name, value in times.items():
    _print(name, value)
  if eval_repeats > 0:
    _print("eval_users", int(jnp.sum(program.valid_set.real) +
                             jnp.sum(program.test_set.real)))

  if replicas > 0 and epochs > 0:
    del program  # its state and compiled programs
    single = time_program(program_lib.build_program(replica_config(config, 1), split),
                          epochs=epochs, warmup=warmup, eval_repeats=0)
    sequential = replicas * single["train_epoch_seconds"]
    _print("replicas", replicas)
    _print("single_epoch_seconds", single["train_epoch_seconds"])
    _print("vmapped_epoch_seconds", times["train_epoch_seconds"])
    _print("sequential_epoch_seconds", sequential)
    _print("replica_speedup", sequential / times["train_epoch_seconds"])

  if propagation_compare:
    model = models.Model(kind="lightgcn", num_users=split.num_users,
                         num_items=split.num_items, embed_dim=config.embed_dim,
                         num_layers=config.num_layers)
    seconds = propagation_seconds(model, training_graph(split, ell=True), propagation_repeats)
    for method, value in seconds.items():
      _print(f"propagation_{method}_seconds", value)


def _timed_cpu(fn: Callable, *args) -> tuple[Any, float, float]:
  """(fn(*args), wall seconds, CPU seconds of this process), waiting for the outputs.

  CPU seconds count the work of every XLA thread, so on a shared machine they
  move less with other processes' load than wall seconds do.
  """
  start, cpu = time.perf_counter(), time.process_time()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start, time.process_time() - cpu


def sampler_table(config, split: data_lib.Split, names, *, epochs: int,
                  warmup: int) -> list[dict]:
  """Each sampler's epoch seconds (and per-epoch refresh) on the same data, one table.

  Every sampler runs the config as it is but for `sampler` (GAN pre-training
  off: its RNS epochs would time RNS). The sampler's own memory is its state
  (all replicas); peak memory is this process's VmHWM, reset before each
  sampler where Linux allows, so it includes the data and what earlier
  samplers' compiled programs still hold. Columns: an epoch's wall seconds
  (median) and ratio to DNS's, the refresh's wall seconds, the state's MB,
  the peak RSS, then the epoch's process-CPU seconds and their ratio to DNS's
  (steadier than wall time on a shared machine) and refresh / epoch seconds.

  Seen on the shared 2-core CPU (load 8-14, so wall ratios swing; CPU-time
  ratio to DNS): ml100k MF H 32: rns 0.33, pdns/mix 1.05, adasir_u/p
  0.65/0.72, gdns 1.04, srns 2.87, advir 5.4, irgan 9.2 (before this table's
  speed work: srns 2.98, advir 7.8, irgan 12.0). IRGAN/AdvIR pay B x I per
  step for G's softmax over all items; SRNS scores S1 + S2 = 72 items per
  example against DNS's 32. Gowalla MF H 64 (1 epoch): CPU ratio srns 2.09,
  gdns 1.10, adasir_u/p 0.39/0.45; refresh / epoch (wall) srns 0.78, gdns
  0.24, adasir_u/p 0.19/0.21; state srns 2051 MB, gdns 342 MB, adasir 11 MB.
  ml100k LightGCN: mixgcf 2.0-2.1 (3.4 before; it scores H candidates on
  every layer).

  Returns:
    One row per sampler: sampler, epoch_seconds, epoch_cpu_seconds, vs_dns,
    vs_dns_cpu, refresh_seconds, refresh_vs_epoch, state_bytes, peak_rss_bytes.
  """
  rows = []
  for name in names:
    sampler_config = copy.deepcopy(config)
    with sampler_config.unlocked():
      sampler_config.sampler, sampler_config.pretrain_epochs = name, 0
    _rss_peak_reset()
    program = program_lib.build_program(sampler_config, split)
    state, data = program.init_state(), program.train_data()
    hparams, graph = program.hparams, program.graph
    refresh = program.refresh_fn or (lambda state, data, graph: state)
    epoch_times, cpu_times, refresh_times = [], [], []
    for i in range(warmup + epochs):
      state, refreshed, _ = _timed_cpu(refresh, state, data, graph)
      (state, _), elapsed, cpu = _timed_cpu(program.epoch_fn, state, hparams, data, graph)
      if i >= warmup:
        epoch_times.append(elapsed)
        cpu_times.append(cpu)
        refresh_times.append(refreshed)
    state_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(state.sampler_state))
    row = {"sampler": name, "epoch_seconds": float(np.median(epoch_times)),
           "epoch_cpu_seconds": float(np.median(cpu_times)), "state_bytes": int(state_bytes),
           "refresh_seconds": float(np.median(refresh_times)) if program.refresh_fn else 0.0,
           "peak_rss_bytes": _rss_peak_bytes()}
    row["refresh_vs_epoch"] = row["refresh_seconds"] / row["epoch_seconds"]
    rows.append(row)
    del program, state
  dns = next((r for r in rows if r["sampler"] == "dns"), None)
  print(f"{'sampler':<10} {'epoch s':>9} {'vs dns':>7} {'refresh s':>10} {'state MB':>9} "
        f"{'peak RSS MB':>12} {'cpu s':>8} {'cpu vs dns':>10} {'refresh/epoch':>13}")
  for row in rows:
    row["vs_dns"] = row["epoch_seconds"] / dns["epoch_seconds"] if dns else float("nan")
    row["vs_dns_cpu"] = (row["epoch_cpu_seconds"] / dns["epoch_cpu_seconds"] if dns
                         else float("nan"))
    print(f"{row['sampler']:<10} {row['epoch_seconds']:>9.3f} {row['vs_dns']:>7.2f} "
          f"{row['refresh_seconds']:>10.3f} {row['state_bytes'] / 2**20:>9.1f} "
          f"{row['peak_rss_bytes'] / 2**20:>12.0f} {row['epoch_cpu_seconds']:>8.3f} "
          f"{row['vs_dns_cpu']:>10.2f} {row['refresh_vs_epoch']:>13.2f}")
    _print(f"sampler_{row['sampler']}_epoch_seconds", row["epoch_seconds"])
  return rows


def main():
  """The command line (flags are defined here so that importing defines none)."""
  config = config_flags.DEFINE_config_file(
      "config", None, "Path to a config file, e.g. configs/ml100k.py.", lock_config=True)
  epochs = flags.DEFINE_integer("epochs", 3, "Timed training epochs (0: skip training).",
                                lower_bound=0)
  warmup = flags.DEFINE_integer("warmup", 1,
                                "Untimed epochs and evaluations after compiling.",
                                lower_bound=0)
  eval_repeats = flags.DEFINE_integer("eval_repeats", 3,
                                      "Timed full evaluations (0: skip).", lower_bound=0)
  replicas = flags.DEFINE_integer(
      "replicas", 0, "If > 0, also compare this many vmapped replicas (seeds) with as "
      "many sequential single runs.", lower_bound=0)
  propagation_compare = flags.DEFINE_bool(
      "propagation_compare", False, "Time one LightGCN forward + backward propagation "
      "with each method of graph.PROPAGATIONS.")
  propagation_repeats = flags.DEFINE_integer(
      "propagation_repeats", 5, "Timed calls per propagation method.", lower_bound=1)
  only_graph = flags.DEFINE_bool("graph_only", False,
                                 "Only build the normalised adjacency; no training.")
  users = flags.DEFINE_integer("synthetic_users", 0,
                               "Users of a random graph replacing the config's data.")
  items = flags.DEFINE_integer("synthetic_items", 0, "Items of the random graph.")
  interactions = flags.DEFINE_integer(
      "synthetic_interactions", 0, "Training interactions of the random graph (valid "
      "and test add an eighth of that each: an 80/10/10 split).")
  scaling_flag = flags.DEFINE_bool(
      "scaling", False, "Epoch and evaluation seconds and peak memory of MF and LightGCN "
      "on zipf data at --scaling_sizes interactions (each in its own process); a table, "
      "the fitted exponents and results/scaling/scaling.{md,png}.")
  scaling_sizes = flags.DEFINE_list(
      "scaling_sizes", ["1000000", "4000000", "16000000", "50000000"],
      "Interactions per scaling point (users = items = interactions / 50).")
  scaling_models = flags.DEFINE_list("scaling_models", list(SCALING_MODELS),
                                     "Models timed at each scaling point.")
  scaling_steps = flags.DEFINE_integer(
      "scaling_steps", 10, "Timed training steps per point, extrapolated to an epoch.",
      lower_bound=1)
  scaling_eval_users = flags.DEFINE_integer(
      "scaling_eval_users", 2048, "Test users in the sampled evaluation.", lower_bound=1)
  scaling_out = flags.DEFINE_string("scaling_out", "results/scaling",
                                    "Folder for scaling.md and scaling.png.")
  scaling_timeout = flags.DEFINE_integer(
      "scaling_timeout", 900, "Seconds one scaling point may take; past it, it and the "
      "larger sizes are skipped.", lower_bound=1)
  scaling_point_flag = flags.DEFINE_integer(
      "scaling_point", 0, "Internal: measure this one size and print scaling_row lines.",
      lower_bound=0)
  sampler_names = flags.DEFINE_list(
      "samplers", [], "Time each of these samplers ('all': every registered one) on the "
      "same data in one run, as a table with the ratio to DNS.")
  devices = flags.DEFINE_list(
      "devices", ["1"], "Device counts for --scaling: each size is measured on each "
      "count (CPU: forced host devices, --config.mesh=data=N).")
  flags.mark_flags_as_required(["config"])

  def body():
    _print("backend", jax.default_backend())
    _print("devices", ", ".join(str(d) for d in jax.devices()))
    models = tuple(scaling_models.value)
    unknown = set(models) - set(SCALING_MODELS)
    if unknown:
      raise data_lib.DataError(f"--scaling_models: unknown {sorted(unknown)}; "
                               f"choose from {SCALING_MODELS}")
    if scaling_point_flag.value:
      scaling_point(config.value, scaling_point_flag.value, models=models,
                    steps=scaling_steps.value, eval_users=scaling_eval_users.value)
      return
    if scaling_flag.value:
      try:
        sizes = [int(v) for v in scaling_sizes.value]
        counts = [int(v) for v in devices.value]
      except ValueError as e:
        raise data_lib.DataError(f"--scaling_sizes / --devices: not integers ({e})") from e
      scaling(config.value, sizes, models=models, steps=scaling_steps.value,
              eval_users=scaling_eval_users.value, devices=counts, out_dir=scaling_out.value,
              point_timeout=scaling_timeout.value,
              command="python " + " ".join(["launch/benchmark.py"] + sys.argv[1:]))
      return
    split, seconds = _timed(benchmark_split, config.value, users.value, items.value,
                            interactions.value)
    _print("data", f"{split.name} ({seconds:.1f} s to load or generate)")
    if sampler_names.value:
      names = (list(samplers.REGISTRY) if sampler_names.value == ["all"]
               else sampler_names.value)
      unknown = sorted(set(names) - set(samplers.REGISTRY))
      if unknown:
        raise data_lib.DataError(f"--samplers: unknown {unknown}; choose from "
                                 f"{list(samplers.REGISTRY)} or 'all'")
      sampler_table(config.value, split, names, epochs=epochs.value, warmup=warmup.value)
    elif only_graph.value:
      graph_only(config.value, split)
    else:
      benchmark(config.value, split, epochs=epochs.value, warmup=warmup.value,
                eval_repeats=eval_repeats.value, replicas=replicas.value,
                propagation_compare=propagation_compare.value,
                propagation_repeats=propagation_repeats.value)
    memory, source = peak_memory()
    _print("peak_memory_bytes", memory)
    _print("peak_memory_source", source)
  cli.run(body, verbosity=None)  # absl's INFO log: the data and sampler lines


if __name__ == "__main__":
  main()
