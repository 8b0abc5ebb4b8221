#!/usr/bin/env bash
# The GPU checks, in one device call of at most 8 minutes: each stage has its own time limit, so a slow one cannot
# starve the rest, and what the stages wrote is copied to $OUT after each stage and on exit, whatever failed.
#
#   bash tools/gpu.sh             # on the GPU machine (device tool: run, timeout_s 540, carry .whl)
#   bash tools/gpu.sh --dry-run   # the same stages on this machine's CPU with tiny sizes (tests/test_gpu_script.py)
#
# Stages (limit in seconds): env (20: device, driver, versions, date), tests (145: the tests marked cuda), op (125: the
# op suites for ssl-2 and linear-3 with the copy-bandwidth roofline), step (55: one refinement step, fused vs eager),
# throughput (85: 24 Kodak-size crops x 200 iterations, batched variants against one image at a time), evaluate (50:
# `sgaplus evaluate` on 8 Kodak-size crops at two rate points, 100 iterations, batched against one at a time).
# Results: $GPU_RESULTS (default bench/results/gpu): gpu-stages.json (env and each stage's status and seconds),
# gpu-run.log (every stage's output), the op report (<device>.{json,md,png}), the throughput report
# (refine-throughput-<device>.{json,png}) and evaluate's (evaluate-throughput-<device>.json): at most 8 files, as the
# device call returns.
#
# The GPU machine has torch, triton, pytest-benchmark, scikit-image and matplotlib, but no compressai: before the
# call, fetch its wheels into .whl/ (ignored by git) and name .whl in carry:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl compressai==1.2.8 pytorch-msssim==1.0.0
# Limits can be changed per stage: GPU_LIMIT_TESTS=200 bash tools/gpu.sh; PYTHON=/path/to/python picks the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
case "$*" in
  "") dry=0 ;;
  --dry-run) dry=1 ;;
  *) echo "usage: bash tools/gpu.sh [--dry-run]" >&2; exit 2 ;;
esac
results=${GPU_RESULTS:-bench/results/gpu}
mkdir -p "$results"
log="$results/gpu-run.log"
stages="$results/gpu-stages.jsonl"
: > "$log"
: > "$stages"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}  # the interpreter every stage runs (the tests pass their own)

deliver() {  # the stages' files to $OUT (the device call brings back what is there)
  "$python" - "$results" "$stages" <<'EOF'
import json, sys
from pathlib import Path
results, lines = Path(sys.argv[1]), Path(sys.argv[2]).read_text().splitlines()
report = {"stages": [json.loads(line) for line in lines if line.strip()]}
env = results / "gpu-env.json"
if env.exists():
    report["env"] = json.loads(env.read_text())
(results / "gpu-stages.json").write_text(json.dumps(report, indent=1) + "\n")
EOF
  if [ -n "${OUT:-}" ]; then
    find "$results" -maxdepth 1 -type f ! -name '*.jsonl' ! -name 'gpu-env.json' -exec cp {} "$OUT"/ \;
  fi
}
trap deliver EXIT

status=0
stage() {  # stage NAME LIMIT COMMAND...: run under its limit, record status and seconds, deliver
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s) $(date -u +%FT%TZ)" >> "$log"
  local start=$SECONDS
  timeout -k 5 "$limit" "$@" >> "$log" 2>&1
  local rc=$?
  echo "{\"stage\": \"$name\", \"status\": $rc, \"seconds\": $((SECONDS - start)), \"limit\": $limit}" >> "$stages"
  [ $rc -eq 0 ] || status=1
  deliver
}

if [ $dry -eq 0 ]; then
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || exit 1
    export PYTHONPATH=/tmp/site
  fi
  "$python" -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
  device=cuda
  op_args=(-k "test_speed and (ssl-2 or linear-3)")
  step_args=(-k test_refinement_step)
  throughput_args=(--images 24 --baseline-images 2 --iterations 200 --batch 24)
  evaluate_args=(--images 8 --baseline-images 2 --height 512 --width 768 --iterations 100 --repeats 2 --no-seed-spread)
else  # the same stages on the CPU, sized to take seconds
  device=cpu
  op_args=(-k "test_speed and ssl-2 and fwd+bwd and float32 and not compile" --sizes 4096 --no-memory)
  step_args=(-k "test_refinement_step and fused and not 8" --step-image 64x96)
  throughput_args=(--images 2 --baseline-images 1 --iterations 2 --batch 2 --height 64 --width 64 --variants batched)
  evaluate_args=(--images 2 --baseline-images 1 --height 64 --width 64 --iterations 1 --repeats 1 --no-seed-spread
    --threads 1)
fi

stage env "${GPU_LIMIT_ENV:-20}" "$python" -c "
import datetime, json, pathlib, subprocess, sys, torch, triton
driver = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'], capture_output=True,
                        text=True).stdout.strip() if torch.cuda.is_available() else None
pathlib.Path(sys.argv[1]).write_text(json.dumps({
    'device': torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', 'driver': driver,
    'torch': torch.__version__, 'triton': triton.__version__, 'python': sys.version.split()[0],
    'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}))
" "$results/gpu-env.json"
stage tests "${GPU_LIMIT_TESTS:-145}" "$python" -m pytest -q -p no:cacheprovider -m cuda tests
stage op "${GPU_LIMIT_OP:-125}" "$python" bench/run.py "${op_args[@]}" --out "$results"
stage step "${GPU_LIMIT_STEP:-55}" "$python" bench/run.py "${step_args[@]}" --merge --no-roofline --no-memory \
  --out "$results"
stage throughput "${GPU_LIMIT_THROUGHPUT:-85}" "$python" bench/refine_throughput.py "${throughput_args[@]}" \
  --device "$device" --out "$results"
stage evaluate "${GPU_LIMIT_EVALUATE:-50}" "$python" bench/evaluate_throughput.py "${evaluate_args[@]}" --json-only \
  --device "$device" --out "$results"
exit $status
