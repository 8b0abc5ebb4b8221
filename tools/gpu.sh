#!/usr/bin/env bash
# On the GPU machine: the CUDA tests, the benchmark suites and the refinement throughput run; results
# land in bench/results/ and are copied to $OUT (when set) so they come back to commit.
#   bash tools/gpu.sh [tests|bench|op|step|throughput|all]   (default all)
# One device call may run 10 minutes: split the work across calls, e.g. tests, then op (the op suites and
# the roofline), then step (the refinement-step suite), then throughput. op and step merge into the
# device's report in bench/results (commit what came back from one call before the next, so it travels).
#
# That machine has torch, triton, pytest-benchmark, scikit-image and matplotlib, but no compressai:
# before the call, fetch its wheels here into .whl/ (ignored by git) and name .whl in `carry`:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl compressai==1.2.8 pytorch-msssim==1.0.0
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
case "$stage" in
  tests|bench|op|step|throughput|all) ;;
  *) echo "unknown stage '$stage'; valid: tests bench op step throughput all" >&2; exit 2 ;;
esac
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())"
status=0
stamp=$(mktemp)  # what this run writes is newer than this file
if [ "$stage" = tests ] || [ "$stage" = all ]; then
  python3 -m pytest -q -m cuda tests 2>&1 | tee bench/results/cuda-tests.log || status=1
fi
if [ "$stage" = bench ] || [ "$stage" = all ]; then
  python3 bench/run.py 2>&1 | tee bench/results/bench.log || status=1
fi
if [ "$stage" = op ]; then
  python3 bench/run.py -k "test_speed or test_all_methods" --merge 2>&1 | tee bench/results/bench-op.log || status=1
fi
if [ "$stage" = step ]; then
  python3 bench/run.py -k test_refinement_step --merge --no-roofline 2>&1 | tee bench/results/bench-step.log || status=1
fi
if [ "$stage" = throughput ] || [ "$stage" = all ]; then
  python3 bench/refine_throughput.py --images 24 --baseline-images 2 --iterations 2000 --batch 24 \
    2>&1 | tee bench/results/throughput.log || status=1
fi
# only this run's files travel back (the device call returns at most 8)
if [ -n "${OUT:-}" ]; then find bench/results -type f -newer "$stamp" -exec cp {} "$OUT"/ \;; fi
exit $status
