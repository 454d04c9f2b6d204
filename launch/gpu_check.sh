#!/usr/bin/env bash
# The speed targets of issue 4 on a GPU, in one call (not run on the CPU-only
# development machine). From the repo root:
#   PDNS_DATA_DIR=/path/to/data bash launch/gpu_check.sh
#
# Targets (H200): Gowalla LightGCN d=64, PDNS H=64, batch 2048: train epoch
# <= 0.6 s and evaluation of all 29,858 users (eval_test_seconds) <= 0.1 s;
# replica throughput (ml100k x30, Gowalla x5) against as many sequential runs.
# Also: the three propagation methods on the GPU (configs/default.py's choice was
# made on CPU), the graph tests on the GPU, and every sampler's epoch against DNS.
#
# Writes one log per step and summary.txt under $OUT (else /tmp/gpu_check);
# a step that fails or times out is recorded and the rest still run.
# Without the Gowalla / ml100k files, random graphs of the same shape stand in.
# The data lies outside the repo; to use it on the device machine, copy it into
# the ignored tmp/ first and carry it (about 10 MB):
#   mkdir -p tmp/data && cp -r ../shared/data/gowalla ../shared/data/ml-100k tmp/data/
#   run(command="bash launch/gpu_check.sh", carry=["tmp/data"], timeout_s=590)

set -u
cd "$(dirname "$0")/.."
# The scripts import pdns_jax, configs and launch as installed packages
# (`pip install -r requirements.txt`); a bare copy of the repo on a device
# machine, with no index to install from, imports them from here instead.
if ! python -c "import pdns_jax, configs, launch" 2> /dev/null; then
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
export PDNS_CACHE_DIR="${PDNS_CACHE_DIR:-/tmp/pdns_split_cache}"  # not under $OUT: not sent back
export TF_CPP_MIN_LOG_LEVEL=2
BENCH="python launch/benchmark.py"

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
if [[ -f "$data_dir/ml-100k/u.data" ]]; then
  ML100K=(--config=configs/ml100k.py)
else
  ML100K=(--config=configs/ml100k.py --synthetic_users=943 --synthetic_items=1682
          --synthetic_interactions=80000)
fi

step() {  # step NAME SECONDS COMMAND...: runs it with a time limit, logs to $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  local start=$SECONDS
  timeout -k 10 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "   rc=$? after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

{ date; nvidia-smi; python -c "import jax; print(jax.__version__, jax.default_backend(), jax.devices())"
  echo "PDNS_DATA_DIR=${PDNS_DATA_DIR:-unset} gowalla: ${GOWALLA[*]} ml100k: ${ML100K[*]}"
} > "$OUT/environment.txt" 2>&1
if ! python -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then
  echo "JAX has no GPU backend here; see $OUT/environment.txt" | tee -a "$OUT/summary.txt"
  exit 1
fi

# Limits keep the worst case under 540 s (one device call); expect about 4 minutes.
# (Graph construction at 100M edges is host work: see README's Speed section.)
# The headline: default propagation, epoch and evaluation, plus the three propagations.
step gowalla 110 $BENCH "${GOWALLA[@]}" --epochs=5 --eval_repeats=5 --propagation_compare \
  --propagation_repeats=20
# Whole epochs with the other propagation methods (the default's is the step above).
default=$(python -c "from configs import default; print(default.get_config().propagation)")
echo "default propagation: $default" | tee -a "$OUT/summary.txt"
for method in segment_sum bcoo bcsr; do
  [[ "$method" == "$default" ]] && continue
  step "gowalla_$method" 70 $BENCH "${GOWALLA[@]}" --config.propagation=$method \
    --epochs=3 --eval_repeats=0
done
step ml100k_replicas30 80 $BENCH "${ML100K[@]}" --replicas=30 --epochs=3 --eval_repeats=2
step gowalla_replicas5 110 $BENCH "${GOWALLA[@]}" --replicas=5 --epochs=3 --eval_repeats=2
# Every sampler's epoch on the same data, against DNS (issue "the paper's whole comparison").
step samplers_ml100k_mf 60 $BENCH "${ML100K[@]}" --config.model=mf --samplers=all \
  --epochs=3 --warmup=1
step graph_tests 40 python -m pytest -q tests/graph_test.py

# Figures against the targets.
python - "$OUT" <<'EOF' | tee -a "$OUT/summary.txt"
import pathlib, re, sys
out = pathlib.Path(sys.argv[1])
def lines(name):
  path = out / f"{name}.txt"
  return dict(re.findall(r"^(\w+): (.*)$", path.read_text(), re.M)) if path.exists() else {}
def show(name, key, target=None):
  value = lines(name).get(key)
  verdict = "" if target is None or value is None else (
      "  PASS" if float(value) <= target else f"  FAIL (target <= {target})")
  print(f"{name}.{key}: {value}{verdict}")
show("gowalla", "shapes"); show("gowalla", "devices")
show("gowalla", "train_epoch_seconds", 0.6); show("gowalla", "eval_test_seconds", 0.1)
for key in ("eval_seconds", "eval_users", "compile_seconds", "steps_per_second",
            "peak_memory_bytes", "propagation_segment_sum_seconds",
            "propagation_bcoo_seconds", "propagation_bcsr_seconds"):
  show("gowalla", key)
for method in ("segment_sum", "bcoo", "bcsr"):  # the default's epoch is gowalla's
  show(f"gowalla_{method}", "train_epoch_seconds")
for name in ("ml100k_replicas30", "gowalla_replicas5"):
  for key in ("replicas", "single_epoch_seconds", "vmapped_epoch_seconds",
              "sequential_epoch_seconds", "replica_speedup", "eval_seconds"):
    show(name, key)
for name, value in lines("samplers_ml100k_mf").items():
  if name.startswith("sampler_"):
    print(f"samplers_ml100k_mf.{name}: {value}")
EOF
grep -A12 "^sampler " "$OUT/samplers_ml100k_mf.txt" 2> /dev/null | tee -a "$OUT/summary.txt"
