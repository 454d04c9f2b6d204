"""config.mesh: one run split over 1, 2 and 8 (forced CPU) devices trains the same run.

Runs in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8,
since the device count is fixed when JAX starts. Tolerance: metrics equal to
1e-5 (sums over devices may change the order of float additions; on this CPU
they came out bitwise equal).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import synthetic as synthetic_config
from pdns_jax import config as config_lib
from pdns_jax import mesh as mesh_lib
from pdns_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNS_SCRIPT = r'''
import json, tempfile
import jax
from configs import synthetic
from pdns_jax import program, train
out = {"devices": jax.device_count()}
for model in MODELS:
  for sampler in SAMPLERS:
    for mesh in MESHES:
      c = synthetic.get_config("smoke"); c.unlock()
      c.update(tensorboard=False, model=model, sampler=sampler, mesh=mesh, num_epochs=2,
               batch_size=128, eval_every=2)
      c.lock()
      with tempfile.TemporaryDirectory() as d:
        s = train.train_and_evaluate(c, d)
      out[f"{model}/{sampler}/{mesh}"] = [s[k] for k in ("best_epoch", "valid/recall@50",
                                                         "test/recall@50", "test/ndcg@50")]
data = program.build_program(c).train_data()  # the last run's placement of the pairs
out["pairs"] = [data.num_pairs, data.users.shape[0],
                [shard.data.shape[0] for shard in data.users.addressable_shards]]
print("RESULT " + json.dumps(out))
'''


def _on_eight_devices(script: str) -> dict:
  """Runs `script` in a process that sees 8 CPU devices; the JSON it prints after RESULT."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.split("RESULT ", 1)[1])


def _runs(models, samplers, meshes) -> dict:
  """Each model x sampler x mesh trained two epochs on 8 forced devices: its metrics,
  and where the last run put its training pairs."""
  return _on_eight_devices(f"MODELS, SAMPLERS, MESHES = {models!r}, {samplers!r}, "
                           f"{meshes!r}\n" + RUNS_SCRIPT)


def test_one_two_and_eight_devices_give_the_same_metrics():
  out = _runs(("mf", "lightgcn"), ("rns", "dns", "pdns"), ("", "data=2", "data=8"))
  assert out.pop("devices") == 8
  for model in ("mf", "lightgcn"):
    for sampler in ("rns", "dns", "pdns"):
      one = out[f"{model}/{sampler}/"]
      for mesh in ("data=2", "data=8"):
        assert out[f"{model}/{sampler}/{mesh}"] == pytest.approx(one, abs=1e-5), (
            model, sampler, mesh)


RESTORE_SCRIPT = r'''
import json, sys, tempfile, pathlib
from configs import synthetic
from pdns_jax import train
def config(epochs, mesh):
  c = synthetic.get_config("smoke"); c.unlock()
  c.update(tensorboard=False, model="lightgcn", mesh=mesh, num_epochs=epochs, batch_size=128,
           eval_every=1, patience=100)
  return c.lock()
keys = ("best_epoch", "valid/recall@50", "test/recall@50", "test/ndcg@50")
out = {}
with tempfile.TemporaryDirectory() as d:
  d = pathlib.Path(d)
  out["full"] = train.train_and_evaluate(config(4, ""), d / "full")
  for first, second in (("data=8", ""), ("", "data=8")):
    work = d / f"{first}_{second}"
    train.train_and_evaluate(config(2, first), work)
    out[f"{first}->{second}"] = train.train_and_evaluate(config(4, second), work)
print("RESULT " + json.dumps({k: [v[m] for m in keys] for k, v in out.items()}))
'''


def test_a_run_saved_on_eight_devices_resumes_on_one_and_back():
  out = _on_eight_devices(RESTORE_SCRIPT)
  for resumed in ("data=8->", "->data=8"):
    assert out[resumed] == pytest.approx(out["full"], abs=1e-5), resumed


def test_padded_tables_keep_the_real_rows_and_bad_meshes_are_refused(tmp_path):
  from pdns_jax import models  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  plain = models.Model(kind="mf", num_users=5, num_items=7, embed_dim=3)
  padded = models.Model(kind="mf", num_users=5, num_items=7, embed_dim=3, row_multiple=4)
  a, b = plain.init(jax.random.PRNGKey(0)), padded.init(jax.random.PRNGKey(0))
  assert b["user"].shape == (8, 3) and b["item"].shape == (8, 3)
  np.testing.assert_array_equal(b["user"][:5], a["user"])
  np.testing.assert_array_equal(b["user"][5:], 0.0)
  np.testing.assert_array_equal(padded.embed(b, None)[1], plain.embed(a, None)[1])
  for text, message in (("data=3", "needs 3 devices"), ("model=2", "is not 'data=N'"),
                        ("data=x", "must be an integer")):
    with pytest.raises(config_lib.ConfigError, match=f"config.mesh: .*{message}"):
      mesh_lib.make_mesh(text)
  c = synthetic_config.get_config("smoke")
  c.unlock()
  c.mesh = "data=4"
  with pytest.raises(config_lib.ConfigError, match="config.mesh"):
    train.train_and_evaluate(c, tmp_path)
  assert not list(tmp_path.iterdir())  # refused before anything was written


def test_the_training_pairs_are_split_by_rows_and_samplers_reading_them_agree():
  # SRNS, GDNS and AdaSIR read every training pair at their refresh.
  out = _runs(("mf",), ("srns", "gdns", "adasir_u"), ("", "data=8"))
  num_pairs, rows, per_device = out.pop("pairs")
  assert rows % 8 == 0 and num_pairs <= rows < num_pairs + 8  # padded to 8 devices
  assert per_device == [rows // 8] * 8  # each device holds its eighth, not a copy
  for sampler in ("srns", "gdns", "adasir_u"):
    assert out[f"mf/{sampler}/data=8"] == pytest.approx(out[f"mf/{sampler}/"], abs=1e-5), (
        sampler)
