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
launch/gpu_check.sh measures the GPU targets (one H200's figures: results/gpu_h200/).
--scaling lives in launch/scaling.py, the timing and memory helpers in launch/measure.py.

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
import math
import sys

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

from launch import measure
from launch import scaling as scaling_lib
from pdns_jax import cli
from pdns_jax import data as data_lib
from pdns_jax import evaluate as eval_lib
from pdns_jax import graph as graph_lib
from pdns_jax import models
from pdns_jax import program as program_lib
from pdns_jax import samplers
from pdns_jax.data import core as data_core

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
    epoch, out["compile_seconds"] = measure.compiled(program.epoch_fn, state, hparams, data, graph)
    # Printed as it goes, so a run cut off by a time limit still says how far it got.
    measure.print_figure("epoch_compiled_seconds", out["compile_seconds"])
    seconds = []
    for i in range(warmup + epochs):
      (state, _), elapsed = measure.timed(epoch, state, hparams, data, graph)
      measure.print_figure(f"epoch_{i}_seconds", elapsed)
      if i >= warmup:
        seconds.append(elapsed)
    out["train_epoch_seconds"] = float(np.median(seconds))
    num_batches = -(-program.spec.num_train // program.spec.batch_size)
    out["steps_per_second"] = (num_batches * len(program.settings) /
                               out["train_epoch_seconds"])
  if eval_repeats > 0:
    valid, test = program.valid_set, program.test_set
    evaluate, out["eval_compile_seconds"] = measure.compiled(
        program.eval_fn, state.params, graph, valid, test)
    model, topk = program.spec.model, program.topk
    chunk = program.config.eval_item_chunk
    test_only, _ = measure.compiled(jax.jit(jax.vmap(
        lambda params, graph, test: eval_lib.evaluate(*model.embed(params, graph), test, topk,
                                                      item_chunk=chunk),
        in_axes=(0, None, None))), state.params, graph, test)
    for name, fn, args in (("eval_seconds", evaluate, (state.params, graph, valid, test)),
                           ("eval_test_seconds", test_only, (state.params, graph, test))):
      seconds = [measure.timed(fn, *args)[1] for _ in range(warmup + eval_repeats)]
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
    measure.timed(steps[method], params, graph)  # compile
  seconds = {method: [] for method in steps}
  for _ in range(repeats):
    for method, step in steps.items():
      seconds[method].append(measure.timed(step, params, graph)[1])
  return {method: float(np.median(s)) for method, s in seconds.items()}


def replica_config(config, num_replicas: int):
  """The config with `num_replicas` seeds and no hyper-parameter sweep."""
  config = copy.deepcopy(config)
  config.num_replicas = num_replicas
  config.replica_sweep = ""
  return config



# ----------------------------------------------------------------------------
# Main.



def _shapes(config, split: data_lib.Split, replicas: int) -> str:
  return (f"users={split.num_users} items={split.num_items} train={len(split.train)} "
          f"embed_dim={config.embed_dim} layers={config.num_layers} "
          f"pool_size={config.pool_size} batch_size={config.batch_size} "
          f"replicas={replicas}")


def graph_only(config, split: data_lib.Split) -> None:
  """Times and measures normalized_adjacency + device_graph alone."""
  measure.print_figure("shapes", _shapes(config, split, 0))
  reset = measure.rss_peak_reset()
  graph, seconds = measure.timed(training_graph, split)
  measure.print_figure("graph_edges", int(graph["values"].shape[0]))
  measure.print_figure("graph_build_seconds", seconds)
  measure.print_figure("graph_peak_rss_bytes", measure.rss_peak_bytes())
  measure.print_figure("graph_peak_rss_source", "VmHWM reset before the build" if reset
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
  measure.print_figure("shapes", _shapes(config, split, len(program.settings)))
  times = time_program(program, epochs=epochs, warmup=warmup, eval_repeats=eval_repeats)
  for name, value in times.items():
    measure.print_figure(name, value)
  if eval_repeats > 0:
    measure.print_figure("eval_users", int(jnp.sum(program.valid_set.real) +
                             jnp.sum(program.test_set.real)))

  if replicas > 0 and epochs > 0:
    del program  # its state and compiled programs
    single = time_program(program_lib.build_program(replica_config(config, 1), split),
                          epochs=epochs, warmup=warmup, eval_repeats=0)
    sequential = replicas * single["train_epoch_seconds"]
    measure.print_figure("replicas", replicas)
    measure.print_figure("single_epoch_seconds", single["train_epoch_seconds"])
    measure.print_figure("vmapped_epoch_seconds", times["train_epoch_seconds"])
    measure.print_figure("sequential_epoch_seconds", sequential)
    measure.print_figure("replica_speedup", sequential / times["train_epoch_seconds"])

  if propagation_compare:
    model = models.Model(kind="lightgcn", num_users=split.num_users,
                         num_items=split.num_items, embed_dim=config.embed_dim,
                         num_layers=config.num_layers)
    seconds = propagation_seconds(model, training_graph(split, ell=True), propagation_repeats)
    for method, value in seconds.items():
      measure.print_figure(f"propagation_{method}_seconds", value)



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
    measure.rss_peak_reset()
    program = program_lib.build_program(sampler_config, split)
    state, data = program.init_state(), program.train_data()
    hparams, graph = program.hparams, program.graph
    refresh = program.refresh_fn or (lambda state, data, graph: state)
    epoch_times, cpu_times, refresh_times = [], [], []
    for i in range(warmup + epochs):
      state, refreshed, _ = measure.timed_cpu(refresh, state, data, graph)
      (state, _), elapsed, cpu = measure.timed_cpu(program.epoch_fn, state, hparams, data, graph)
      if i >= warmup:
        epoch_times.append(elapsed)
        cpu_times.append(cpu)
        refresh_times.append(refreshed)
    state_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(state.sampler_state))
    row = {"sampler": name, "epoch_seconds": float(np.median(epoch_times)),
           "epoch_cpu_seconds": float(np.median(cpu_times)), "state_bytes": int(state_bytes),
           "refresh_seconds": float(np.median(refresh_times)) if program.refresh_fn else 0.0,
           "peak_rss_bytes": measure.rss_peak_bytes()}
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
    measure.print_figure(f"sampler_{row['sampler']}_epoch_seconds", row["epoch_seconds"])
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
  scaling_models = flags.DEFINE_list("scaling_models", list(scaling_lib.SCALING_MODELS),
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
    measure.print_figure("backend", jax.default_backend())
    measure.print_figure("devices", ", ".join(str(d) for d in jax.devices()))
    models = tuple(scaling_models.value)
    unknown = set(models) - set(scaling_lib.SCALING_MODELS)
    if unknown:
      raise data_lib.DataError(f"--scaling_models: unknown {sorted(unknown)}; "
                               f"choose from {scaling_lib.SCALING_MODELS}")
    if scaling_point_flag.value:
      scaling_lib.scaling_point(config.value, scaling_point_flag.value, models=models,
                    steps=scaling_steps.value, eval_users=scaling_eval_users.value)
      return
    if scaling_flag.value:
      try:
        sizes = [int(v) for v in scaling_sizes.value]
        counts = [int(v) for v in devices.value]
      except ValueError as e:
        raise data_lib.DataError(f"--scaling_sizes / --devices: not integers ({e})") from e
      scaling_lib.scaling(config.value, sizes, models=models, steps=scaling_steps.value,
              eval_users=scaling_eval_users.value, devices=counts, out_dir=scaling_out.value,
              point_timeout=scaling_timeout.value,
              command="python " + " ".join(["launch/benchmark.py"] + sys.argv[1:]))
      return
    split, seconds = measure.timed(benchmark_split, config.value, users.value, items.value,
                            interactions.value)
    measure.print_figure("data", f"{split.name} ({seconds:.1f} s to load or generate)")
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
    memory, source = measure.peak_memory()
    measure.print_figure("peak_memory_bytes", memory)
    measure.print_figure("peak_memory_source", source)
  cli.run(body, verbosity=None)  # absl's INFO log: the data and sampler lines


if __name__ == "__main__":
  main()
