#!/usr/bin/env bash
# Run every speed and memory benchmark and write benchmarks/results/*.json. From the repo root:
#
#   bash benchmarks/run_all.sh                # CPU, full settings (about 40-60 minutes on 2 idle cores)
#   QUICK=1 bash benchmarks/run_all.sh        # fewer repeats and sizes, a few minutes
#   DEVICE=cuda bash benchmarks/run_all.sh    # also the GPU runs of the training and NST benchmarks
#   THREADS=1 bash benchmarks/run_all.sh      # training/NST with one torch thread (a machine busy with other jobs)
#
# The numbers mean most on an idle machine: the script prints the load average before each benchmark. Each
# benchmark also times its own anchor in the same process, so its ratios hold up under load better than its seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
DEVICE=${DEVICE:-cpu}
THREADS_ARG=()
if [[ -n "${THREADS:-}" ]]; then THREADS_ARG=(--threads "$THREADS"); fi

if [[ -n "${QUICK:-}" ]]; then
  EDIT=(--sizes 1 --faces 1 5 --repeats 3 --anchor-repeats 2 --variants default)
  TRAIN=(--steps 3 --warmup 1 --variants fp32 bf16)
  NST=(--steps 50 --repeats 1 --anchor-steps 2)
  RECALL=(--images 30)
  FRAMING=(--wider-photos 0)
  MOUTH=(--photos 3)
  WARP=(--pairs 3 --repeats 3)
  ONNX=(--repeats 2 --photos 3)
else
  EDIT=()
  TRAIN=()
  NST=()
  RECALL=()
  FRAMING=()
  MOUTH=()
  WARP=()
  ONNX=()
fi

step() { echo; echo "== $1 (load average: $(cut -d' ' -f1-3 /proc/loadavg))"; }

step "edit latency"
$PY benchmarks/edit_latency.py "${EDIT[@]}"
step "training throughput ($DEVICE)"
$PY benchmarks/training_throughput.py --device cpu "${TRAIN[@]}" "${THREADS_ARG[@]}"
step "NST speed"
$PY benchmarks/nst_speed.py --device cpu "${NST[@]}" "${THREADS_ARG[@]}"
if [[ "$DEVICE" == cuda* ]]; then
  step "training throughput (cuda)"
  $PY benchmarks/training_throughput.py --device "$DEVICE" "${TRAIN[@]}"
  step "NST speed (cuda)"
  $PY benchmarks/nst_speed.py --device "$DEVICE" "${NST[@]}"
fi
step "Space memory"
$PY benchmarks/space_memory.py
step "detector recall (needs ../shared/data; skips without it)"
$PY benchmarks/detector_recall.py "${RECALL[@]}"
step "face framing: RetinaFace against Haar (needs ../shared/data; skips without it)"
$PY benchmarks/face_framing.py "${FRAMING[@]}"
step "the learned mouth's cost, a toothy smile to neutral through the CLI"
$PY benchmarks/mouth_latency.py "${MOUTH[@]}"
step "the networks on onnxruntime against torch"
$PY benchmarks/onnx_speed.py "${ONNX[@]}"
step "writing a lossless PNG: save_image against Pillow"
$PY benchmarks/png_encoding.py
step "the warp's sampling kernel: mouth sharpness and time (sharpness needs ../shared/data)"
$PY benchmarks/warp_sampling.py "${WARP[@]}"
step "SA-GAN attention what-if"
$PY benchmarks/sagan_attention.py
echo; echo "Results in benchmarks/results/"
