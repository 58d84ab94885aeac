#!/usr/bin/env bash
# One prepared GPU measurement of the engine (issue 14). Writes everything under $OUT.
set -u
export PYTHONUNBUFFERED=1 DFKD_DATA_DIR=$PWD/.gpu/data DFKD_HOME=/tmp/dfkd-home
mkdir -p $DFKD_HOME
cat .gpu/commit > $OUT/commit.txt
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch;print(torch.__version__, torch.cuda.get_device_name(0))"; nproc; } > $OUT/env.txt 2>&1
cat $OUT/env.txt
echo "== cuda tests"; timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_batched.py -k "cuda" 2>&1 | tail -25 | tee $OUT/tests.txt
echo "== bench cuda cpusmall"; timeout 150 python3 -m dfkd_core bench --device cuda --datasets cpusmall --ks 1,50 --epochs 40 --warmup 3 --teacher random --json > $OUT/bench_cuda_cpusmall.txt 2>&1; tail -c 2500 $OUT/bench_cuda_cpusmall.txt
echo "== bench cuda mnist"; timeout 150 python3 -m dfkd_core bench --device cuda --datasets mnist --epochs 3 --warmup 2 --json > $OUT/bench_cuda_mnist.txt 2>&1; tail -c 1500 $OUT/bench_cuda_mnist.txt
echo "== table 4, cpusmall, 10 seeds, timed"; ( time timeout 200 python3 -m dfkd_core reproduce --table 4 --datasets cpusmall --seeds 10 --workers 4 ) > $OUT/table4_cpusmall.txt 2>&1; tail -c 3000 $OUT/table4_cpusmall.txt
echo done
