#!/usr/bin/env bash
# Every GPU check of the speed and scale issues, in one call of at most ~9 minutes
# (not run on the CPU-only development machine). From the repo root:
#   PDNS_DATA_DIR=/path/to/data bash launch/gpu_check.sh
#
# Targets (one H200): Gowalla LightGCN + PDNS (configs/gowalla.py) train epoch
# <= 0.6 s and evaluation of all test users (eval_test_seconds) <= 0.1 s; 30
# ml-100k replicas >= 10x the throughput of one run; the web config
# (1M users x 1M items x 50M interactions): one epoch's seconds and peak device
# memory. Also: every propagation method's forward + backward on Gowalla (the
# ELL product's custom_vjp included), a whole epoch with `ell`, one run with
# and without `config.mesh` (the sharded path on the GPU, same metrics), every
# sampler's epoch against DNS, and the graph tests on the GPU.
#
# Steps run in order of importance, each with a time limit cut to what is left
# of DEADLINE seconds; a step that fails or times out is recorded and the rest
# still run. Writes $OUT/summary.txt and $OUT/logs.txt (every step's output).
# Without the Gowalla / ml100k files, random graphs of the same shape stand in.
# To use the real data on a device machine, copy it into the ignored tmp/ and
# carry it (about 10 MB), with ml-collections as a wheel (see the tool's notes):
#   mkdir -p tmp/data && cp -r ../shared/data/gowalla ../shared/data/ml-100k tmp/data/
#   run(command="bash launch/gpu_check.sh", carry=["tmp/data", ".whl"], timeout_s=580)
# DRY_RUN=1 runs every step on any backend with small stand-ins (a check of the
# script itself, a few minutes on a 2-core CPU).

set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEADLINE="${DEADLINE:-540}"
# Wheels carried in .whl/ (e.g. ml-collections, absent from the device image).
if compgen -G ".whl/*.whl" > /dev/null && ! "$PY" -c "import ml_collections" 2> /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The scripts import pdns_jax, configs and launch as installed packages
# (`pip install -r requirements.txt`); a bare copy of the repo imports them from
# here (`python -c` would find them in the working directory either way).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/gpu_check}"
LOGS=/tmp/gpu_check_logs  # one file per step; joined into $OUT/logs.txt as we go
mkdir -p "$OUT" "$LOGS"
export PDNS_CACHE_DIR="${PDNS_CACHE_DIR:-/tmp/pdns_split_cache}"  # not under $OUT
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
BENCH=("$PY" launch/benchmark.py)

for dir in "${PDNS_DATA_DIR:-}" tmp/data shared/data ../shared/data; do
  if [[ -n "$dir" && -d "$dir/gowalla" ]]; then export PDNS_DATA_DIR="$dir"; break; fi
done
data_dir="${PDNS_DATA_DIR:-/nonexistent}"
if [[ -d "$data_dir/gowalla" ]]; then
  GOWALLA=(--config=configs/gowalla.py)
else  # Gowalla's shape: 29,858 users, 40,981 items, 810,128 training pairs
  GOWALLA=(--config=configs/gowalla.py --synthetic_users=29858 --synthetic_items=40981
           --synthetic_interactions=810128)
fi
WEB=configs/synthetic.py:web
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  GOWALLA=(--config=configs/gowalla.py --synthetic_users=300 --synthetic_items=500
           --synthetic_interactions=6000)
  WEB=configs/synthetic.py:zipf_small
fi
if [[ -f "$data_dir/ml-100k/u.data" ]]; then
  ML100K=(--config=configs/ml100k.py)
else
  ML100K=(--config=configs/ml100k.py --synthetic_users=943 --synthetic_items=1682
          --synthetic_interactions=80000)
fi

step() {  # step NAME SECONDS COMMAND...: runs it with a time limit, logs to $LOGS/NAME.txt
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  (( limit > left )) && limit=$left
  if (( limit < 15 )); then
    echo "== $name: skipped, ${left} s left of ${DEADLINE}" | tee -a "$OUT/summary.txt"
    return
  fi
  echo "== $name (limit ${limit} s): $*" | tee -a "$OUT/summary.txt"
  local start=$SECONDS
  timeout -k 5 "$limit" "$@" > "$LOGS/$name.txt" 2>&1
  echo "   rc=$? after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
  for f in "$LOGS"/*.txt; do echo "######## $f"; cat "$f"; done > "$OUT/logs.txt"
}

{ date; nvidia-smi; "$PY" -c "import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.default_backend(), jax.devices())"
  echo "PDNS_DATA_DIR=${PDNS_DATA_DIR:-unset} gowalla: ${GOWALLA[*]} ml100k: ${ML100K[*]}"
} > "$LOGS/environment.txt" 2>&1
cat "$LOGS/environment.txt" > "$OUT/logs.txt"
if [[ "${DRY_RUN:-0}" != 1 ]] && ! "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then
  echo "JAX has no GPU backend here; see logs.txt" | tee -a "$OUT/summary.txt"
  exit 1
fi

# 1. The headline: epoch and evaluation of the default propagation, and every
#    propagation's forward + backward (ell's custom_vjp included).
step gowalla 150 "${BENCH[@]}" "${GOWALLA[@]}" --epochs=5 --eval_repeats=5 \
  --propagation_compare --propagation_repeats=20
# 2. 30 vmapped ml-100k replicas against as many sequential runs.
step ml100k_replicas30 90 "${BENCH[@]}" "${ML100K[@]}" --replicas=30 --epochs=3 --eval_repeats=2
# 3. The web config: one whole epoch, one evaluation of all users, peak device memory.
step web_50m 300 "${BENCH[@]}" --config=$WEB --epochs=1 --warmup=0 \
  --eval_repeats=1
# 4. A whole Gowalla epoch with the ELL product (the default's is step 1).
step gowalla_ell 60 "${BENCH[@]}" "${GOWALLA[@]}" --config.propagation=ell --epochs=3 \
  --eval_repeats=0
# 5. The sharded path on the GPU: the same run with and without config.mesh.
run_ml100k() {  # run_ml100k WORKDIR [FLAGS...]
  local dir=$1; shift
  "$PY" -m pdns_jax.main --config=configs/ml100k.py --config.num_epochs=3 \
    --config.eval_every=1 --config.progress=False --config.tensorboard=False \
    --workdir="$dir" "$@" &&
  "$PY" -c "import json, sys; s = json.load(open(sys.argv[1])); print(sys.argv[1], json.dumps(s)[:600])" \
    "$dir/summary.json"
}
mesh_pair() {
  rm -rf /tmp/mesh_none /tmp/mesh_all
  run_ml100k /tmp/mesh_none && run_ml100k /tmp/mesh_all --config.mesh=data=-1
}
export -f run_ml100k mesh_pair
export PY
step mesh_gpu 80 bash -c mesh_pair
# 6. Every sampler against DNS; 7. the graph tests on the GPU.
step samplers_ml100k_mf 90 "${BENCH[@]}" "${ML100K[@]}" --config.model=mf --samplers=all \
  --epochs=3 --warmup=1
step graph_tests 40 "$PY" -m pytest -q -p no:cacheprovider tests/graph_test.py

# Figures against the targets.
"$PY" - "$LOGS" <<'EOF' | tee -a "$OUT/summary.txt"
import pathlib, re, sys
logs = pathlib.Path(sys.argv[1])
def lines(name):
  path = logs / f"{name}.txt"
  return dict(re.findall(r"^(\w+): (.*)$", path.read_text(), re.M)) if path.exists() else {}
def show(name, key, target=None, at_least=False):
  value = lines(name).get(key)
  verdict = ""
  if target is not None and value is not None:
    ok = float(value) >= target if at_least else float(value) <= target
    verdict = "  PASS" if ok else f"  FAIL (target {'>=' if at_least else '<='} {target})"
  print(f"{name}.{key}: {value}{verdict}")
show("gowalla", "shapes"); show("gowalla", "devices")
show("gowalla", "train_epoch_seconds", 0.6); show("gowalla", "eval_test_seconds", 0.1)
for key in ("eval_seconds", "eval_users", "compile_seconds", "eval_compile_seconds",
            "steps_per_second", "peak_memory_bytes", "propagation_ell_seconds",
            "propagation_segment_sum_seconds", "propagation_bcoo_seconds",
            "propagation_bcsr_seconds"):
  show("gowalla", key)
show("gowalla_ell", "train_epoch_seconds")
for key in ("replicas", "single_epoch_seconds", "vmapped_epoch_seconds",
            "sequential_epoch_seconds", "eval_seconds"):
  show("ml100k_replicas30", key)
show("ml100k_replicas30", "replica_speedup", 10, at_least=True)
for key in ("data", "shapes", "compile_seconds", "train_epoch_seconds", "steps_per_second",
            "eval_seconds", "eval_test_seconds", "eval_users", "peak_memory_bytes",
            "peak_memory_source"):
  show("web_50m", key)
for name, value in lines("samplers_ml100k_mf").items():
  if name.startswith("sampler_"):
    print(f"samplers_ml100k_mf.{name}: {value}")
EOF
grep -h "^/tmp/mesh" "$LOGS/mesh_gpu.txt" 2> /dev/null | tee -a "$OUT/summary.txt"
grep -A12 "^sampler " "$LOGS/samplers_ml100k_mf.txt" 2> /dev/null | tee -a "$OUT/summary.txt"
tail -3 "$LOGS/graph_tests.txt" 2> /dev/null | tee -a "$OUT/summary.txt"
for f in "$LOGS"/*.txt; do echo "######## $f"; cat "$f"; done > "$OUT/logs.txt"
