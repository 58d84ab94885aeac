export PYTHONUNBUFFERED=1 DFKD_DATA_DIR=$PWD/.gpu/data DFKD_HOME=/tmp/dfkd-home
cat .gpu/commit
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_batched.py -k "cuda" 2>&1 | tail -5 | tee $OUT/tests.txt
timeout 100 python3 -m dfkd_core bench --device cuda --datasets cpusmall --ks 1,50 --epochs 30 --warmup 3 --teacher random 2>&1 | grep -v "^{" | tee $OUT/bench.txt
