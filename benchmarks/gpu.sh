#!/usr/bin/env bash
# The GPU check of the throughput and evaluation benchmarks, within ~8 minutes on one GPU.
#
# Runs from the repository root with PYTHONPATH=src on a machine whose Python already has jax
# (CUDA), equinox, optax, numpyro and torch (the device machine's image; it reaches no package
# index, so carry what is missing, e.g. flowjax and the binarized-MNIST .mat files):
#   - the MLP VAE throughput, bayesgen vs PyTorch on the same GPU (bench_train_throughput.py)
#   - the conv and resnet VAE throughput vs their PyTorch twins (bench_conv_throughput.py)
#   - importance-sampled log p(x), K = 5000, on the 10,000 test images (bench_log_px.py)
# Results go under $OUT (default benchmarks/out/gpu); each step has its own time limit so one
# slow step cannot take the others' time. Test it on a CPU with tiny settings: SMOKE=1.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out/gpu}"
DATA="${DATA:-../shared/data/binarized_mnist}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
if [[ "${SMOKE:-0}" == 1 ]]; then  # a CPU check that the script runs end to end
    mlp=(--epochs 1 --no-matmul); conv=(--epochs 1 --images 1280); logpx=(--n-test 64 --subset 16 --train-epochs 0)
else
    mlp=(--epochs 3 --no-matmul); conv=(--epochs 3 --images 50000); logpx=(--n-test 10000 --subset 256 --train-epochs 5)
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import jax, torch; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.is_available())"
} > "$OUT/device.txt" 2>&1
status=0
step() {  # name, seconds, command...
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1 || { echo "$name failed or timed out (rc $?)"; status=1; }
    tail -n 12 "$OUT/$name.log"
}
step mlp_throughput 100 "$PY" benchmarks/bench_train_throughput.py --data-dir "$DATA" --out "$OUT/train_throughput.json" "${mlp[@]}"
step conv_throughput 200 "$PY" benchmarks/bench_conv_throughput.py --data-dir "$DATA" --out "$OUT/conv_throughput.json" "${conv[@]}"
step log_px 160 "$PY" benchmarks/bench_log_px.py --data-dir "$DATA" --out "$OUT/log_px.json" "${logpx[@]}"
exit $status
