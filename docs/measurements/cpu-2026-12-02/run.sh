#!/bin/bash
# quiet-box measurements of issues 19 and 23, one run each; output in /tmp/measure/out-*.txt
cd /work/main
export DFKD_DATA_DIR=/work/shared/data DFKD_HOME=/tmp/measure/home
echo "commit $(git rev-parse --short HEAD); $(date -u); load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in 1 2; do
  for what in user builtin; do
    if [ $what = user ]; then
      args="--teacher /tmp/measure/T.pt --data /tmp/measure/cpusmall.csv --target y"
    else
      args="--dataset cpusmall"
    fi
    python3 -m dfkd_core distill $args --sampler direct,gaussian --epochs 200 --json --no-store --quiet 2>/dev/null \
      | python3 -c "import sys,json; rows=[json.loads(l) for l in sys.stdin if l.startswith('{')]; print('$what pair $i seconds', rows[0]['seconds'], 'engines', sorted({r['engine'] for r in rows}))"
  done
done
