"""`launch/benchmark.py --scaling`: epoch, evaluation and memory against interactions.

Each size (and device count) is measured in its own process
(`benchmark.py --scaling_point=N`), so each point's peak memory is its own;
the table, the fitted exponents and a log-log plot go to --scaling_out.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from launch import measure
from pdns_jax import data as data_lib
from pdns_jax import evaluate as eval_lib
from pdns_jax import mesh as mesh_lib
from pdns_jax import program as program_lib
from pdns_jax import step as step_lib
from pdns_jax.data import synthetic


# Users and items per size: num_interactions / SCALING_DEGREE each, so the mean
# degree stays at the web config's 50 (1M x 1M x 50M) and every table grows
# linearly with the interactions.
SCALING_DEGREE = 50
SCALING_MODELS = ("mf", "lightgcn")
# The command line each point runs in (its --scaling_point mode).
BENCHMARK = pathlib.Path(__file__).resolve().with_name("benchmark.py")


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
  epoch, compile_seconds = measure.compiled(epoch_fn, state, program.hparams, data, graph)
  (state, _), _ = measure.timed(epoch, state, program.hparams, data, graph)
  (state, _), seconds = measure.timed(epoch, state, program.hparams, data, graph)
  step_seconds = seconds / steps
  num_batches = -(-spec.num_train // spec.batch_size)

  test, num_test_users = sample_eval_set(split, eval_users, config.eval_batch_size,
                                         config.data_seed)
  model, topk, chunk = spec.model, program.topk, config.eval_item_chunk
  params = jax.tree_util.tree_map(lambda x: x[0], state.params)
  evaluate, _ = measure.compiled(jax.jit(
      lambda params, graph, test: eval_lib.evaluate(*model.embed(params, graph), test, topk,
                                                    item_chunk=chunk)), params, graph, test)
  measure.timed(evaluate, params, graph, test)
  _, eval_seconds = measure.timed(evaluate, params, graph, test)
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
  split, data_seconds = measure.timed(data_lib.load_split, first, False)
  measure.print_figure("data", f"{split.name}: {split.num_users} users x {split.num_items} items, "
         f"{len(split.train)} train pairs ({data_seconds:.1f} s to generate and split)")
  for model in models:
    measure.rss_peak_reset()
    row = time_scaling_model(scaling_config(config, num_interactions, model), split,
                             steps=steps, eval_users=eval_users)
    mesh = mesh_lib.make_mesh(config.mesh)
    row.update(interactions=num_interactions, model=model,
               devices=1 if mesh is None else mesh.size, users=split.num_users,
               items=split.num_items, train=len(split.train), data_seconds=data_seconds,
               peak_rss_bytes=measure.rss_peak_bytes())
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
  argv = [sys.executable, str(BENCHMARK), f"--scaling_point={size}",
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
        measure.print_figure("scaling_skip", reason)
        notes.append(reason)
        continue
      found, reason = _scaling_run(size, count, models=models, steps=steps,
                                   eval_users=eval_users, timeout=point_timeout)
      if reason:
        measure.print_figure("scaling_skip", reason)
        notes.append(reason)
        if "ran past" in reason:
          stopped.add(count)  # larger sizes take longer still
        continue
      for row in found:
        rows.append(row)
        measure.print_figure("scaling_point", f"{size} {row['model']} devices={row['devices']} "
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
    measure.print_figure(f"scaling_exponent_{name}_epoch", fits["epoch_seconds"])
    measure.print_figure(f"scaling_exponent_{name}_step", fits["step_seconds"])
    measure.print_figure(f"scaling_exponent_{name}_eval", fits["eval_seconds"])
  write_scaling(rows, _exponents(rows), out_dir, command, notes, steps, eval_users)
  measure.print_figure("scaling_results", f"{out_dir}/scaling.md, {out_dir}/scaling.png")


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

