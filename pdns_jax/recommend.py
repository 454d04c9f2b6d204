"""Serving a trained run: top-K items per user in the dataset's original ids.

  python -m pdns_jax.recommend --workdir=W --users=196,186 --k=20
  python -m pdns_jax.recommend --workdir=W --users=196 --format=json --out=recs.json
  python -m pdns_jax.recommend --workdir=W --export=W/export

reads the run's config.json and its best checkpoint (the latest one if no
best was saved), scores every item for each requested user with the final
embeddings and prints the K best, leaving out the user's training items.
Users and items are named by the ids of the source files (u.data's user and
item ids, Gowalla's, ...), kept with the split. `--export` writes the final
user and item embeddings (.npy) with the id maps, for serving elsewhere.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib

from absl import flags
import jax
import ml_collections
import numpy as np

from pdns_jax import checkpoints as checkpoints_lib
from pdns_jax import cli
from pdns_jax import data as data_lib
from pdns_jax import program as program_lib
from pdns_jax.config import ConfigError

FORMATS = ("text", "csv", "json")


def load_embeddings(workdir: pathlib.Path, replica: int = 0):
  """(final user embeddings, final item embeddings, split) of a trained run.

  Raises:
    ConfigError: the workdir holds no run, no checkpoint, or no such replica.
  """
  workdir = pathlib.Path(workdir).resolve()  # orbax wants absolute paths
  config_path = workdir / "config.json"
  if not config_path.is_file():
    raise ConfigError(f"--workdir {workdir}: no config.json; is it a training workdir?")
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  program = program_lib.build_program(config)
  state = checkpoints_lib.Checkpoints(workdir, program.to_saved,
                                     program.from_saved).best_params(program.init_state())
  if state is None:
    raise ConfigError(f"--workdir {workdir}: no intact checkpoint to serve from; train "
                      "it first (python -m pdns_jax.main ...)")
  if not 0 <= replica < len(program.settings):
    raise ConfigError(f"--replica: {replica} is not one of the run's "
                      f"{len(program.settings)} replicas")
  params = jax.tree_util.tree_map(lambda x: x[replica], state.params)
  users, items = program.spec.model.embed(params, program.graph)
  return np.asarray(users), np.asarray(items), program.split


def recommend(user_embeddings: np.ndarray, item_embeddings: np.ndarray,
              split: data_lib.Split, raw_users, k: int) -> list[dict]:
  """The K best items of each user, without the user's training items.

  Args:
    user_embeddings, item_embeddings: final embeddings (internal ids).
    split: the run's split (training pairs and the id maps).
    raw_users: user ids as the source files write them.
    k: how many items per user.

  Returns:
    One {"user", "rank", "item", "score"} per recommendation, in original ids.

  Raises:
    ConfigError: an unknown user id or an impossible k.
  """
  position = {int(raw): internal for internal, raw in enumerate(split.user_ids)}
  unknown = [u for u in raw_users if int(u) not in position]
  if unknown:
    raise ConfigError(f"--users: unknown user id(s) {unknown[:10]} (ids are the source's, "
                      f"from {split.user_ids.min()} to {split.user_ids.max()})")
  if not 1 <= k <= split.num_items:
    raise ConfigError(f"--k: must lie in [1, {split.num_items}] (got {k})")
  rows = []
  for raw in raw_users:
    user = position[int(raw)]
    scores = item_embeddings @ user_embeddings[user]
    seen = split.train[split.train[:, 0] == user, 1]
    scores[seen] = -np.inf
    best = np.argsort(-scores, kind="stable")[:k]
    rows += [{"user": int(raw), "rank": rank + 1, "item": int(split.item_ids[i]),
              "score": float(scores[i])} for rank, i in enumerate(best) if np.isfinite(scores[i])]
  return rows


def export(user_embeddings, item_embeddings, split: data_lib.Split,
           folder: pathlib.Path) -> list[pathlib.Path]:
  """Writes the embeddings and id maps as .npy files (atomically); returns their paths."""
  arrays = {"user_embeddings": user_embeddings, "item_embeddings": item_embeddings,
            "user_ids": np.asarray(split.user_ids), "item_ids": np.asarray(split.item_ids)}
  paths = []
  for name, array in arrays.items():
    path = folder / f"{name}.npy"
    data_lib.atomic_write(path, lambda f, a=array: np.save(f, a))
    paths.append(path)
  return paths


def format_rows(rows: list[dict], kind: str) -> str:
  """Rows as an aligned text table, CSV or JSON."""
  if kind == "json":
    return json.dumps(rows, indent=1) + "\n"
  if kind == "csv":
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["user", "rank", "item", "score"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
  lines = [f"{'user':>10} {'rank':>5} {'item':>10} {'score':>10}"]
  lines += [f"{r['user']:>10} {r['rank']:>5} {r['item']:>10} {r['score']:>10.4f}" for r in rows]
  return "\n".join(lines) + "\n"


def main():
  workdir = pathlib.Path(_WORKDIR.value).resolve()  # orbax wants absolute paths
  if not _USERS.value and not _EXPORT.value:
    raise ConfigError("give --users=ID,ID,... and/or --export=FOLDER")
  users, items, split = load_embeddings(workdir, _REPLICA.value)
  if _EXPORT.value:
    for path in export(users, items, split, pathlib.Path(_EXPORT.value)):
      print(f"wrote {path}")
  if _USERS.value:
    try:
      raw_users = [int(u) for u in _USERS.value.split(",") if u.strip()]
    except ValueError:
      raise ConfigError(f"--users: {_USERS.value!r} is not a comma list of integer "
                        "ids") from None
    text = format_rows(recommend(users, items, split, raw_users, _K.value), _FORMAT.value)
    if _OUT.value:
      data_lib.atomic_write(pathlib.Path(_OUT.value), lambda f: f.write(text.encode()))
      print(f"wrote {_OUT.value}")
    else:
      print(text, end="")


_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (config.json, checkpoints/).")
_USERS = flags.DEFINE_string("users", "", "Comma list of user ids, as the source files write them.")
_K = flags.DEFINE_integer("k", 20, "Items per user.")
_FORMAT = flags.DEFINE_enum("format", "text", FORMATS, "Output format.")
_OUT = flags.DEFINE_string("out", "", "Write the recommendations to this file instead of stdout.")
_REPLICA = flags.DEFINE_integer("replica", 0, "Which replica of a replica run to serve.")
_EXPORT = flags.DEFINE_string("export", "", "Also write embeddings and id maps (.npy) here.")

if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  cli.run(main, config_flag=None)
