#!/usr/bin/env bash
# The reference leaderboard's long runs (issue 29: every model tuned to its plateau under one budget, three seeds),
# as two queues, one per core. Maintainers only: every command writes the committed reference (--publish).
#
#   setsid nohup benchmarks/fair.sh 1 &      # appends to runs/logs/fair-1.log
#   setsid nohup benchmarks/fair.sh 2 &      # appends to runs/logs/fair-2.log
#
# (setsid: each queue its own process group, so `kill -- -<pid>` stops one queue and not the other.)
#
# Every command resumes where it stopped (a suite run skips runs whose record exists, a study runs only its
# missing trials), so after a restart the same two commands go on; a finished command costs a few seconds. Each
# queue runs one torch thread. Nothing renders a table: when a command's records are complete, render and commit
# them (`run.py --suite main --leaderboard-only --publish`, `tune.py --report --publish`). The safety nets given
# to a study are the suite profile's for that split (configs/suites/main.yaml), so its tuned rows train as its
# trials did. Stop a queue with `kill -- -<pid>` (its whole process group).
set -u
queue=${1:?usage: benchmarks/fair.sh 1|2}
case "$queue" in 1|2) ;; *) echo "usage: benchmarks/fair.sh 1|2" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p runs/logs
exec >> "runs/logs/fair-$queue.log" 2>&1

step() {
    echo "[fair $queue] $(date -u +%FT%TZ) start: $*"
    "$PY" "$@"
    local rc=$?  # before the next command substitution resets $?
    echo "[fair $queue] $(date -u +%FT%TZ) exit $rc: $*"
}

case "$queue" in
1)  # graph baselines on loo: default rows under the raised epoch safety net, then their studies; TIGER's seeds 1-2
    # and its studies
    step benchmarks/run.py --suite main --model lightgcn --model lightgcn-pyg --split loo --publish --threads 1 --no-leaderboard
    step benchmarks/tune.py --model lightgcn-pyg --split loo --trials 12 --threads 1 --publish stopping_step=50 epochs=1000
    step benchmarks/tune.py --model lightgcn --split loo --trials 12 --threads 1 --publish stopping_step=50 epochs=1000
    step benchmarks/run.py --suite main --model tiger --publish --threads 1 --no-leaderboard
    step benchmarks/tune.py --model tiger --split loo --trials 12 --threads 1 --publish preset=quick
    step benchmarks/tune.py --model tiger --split colarec --trials 12 --threads 1 --publish preset=quick
    ;;
2)  # SASRec without its old 5-epoch cap, then the sequence and generative studies. The studies take their safety
    # nets from main.yaml, so a cap left there would cut every trial: refuse until it is gone.
    if grep -q "sasrec: {epochs: 5}" configs/suites/main.yaml; then
        echo "[fair 2] configs/suites/main.yaml still caps SASRec at 5 epochs (quick profile): remove the cap first"
        exit 2
    fi
    step benchmarks/run.py --suite main --model sasrec --publish --threads 1 --no-leaderboard
    step benchmarks/tune.py --model sasrec --split colarec --trials 12 --threads 1 --publish
    step benchmarks/tune.py --model sasrec --split loo --trials 12 --threads 1 --publish stopping_step=50
    step benchmarks/tune.py --model colarec --split colarec --trials 12 --threads 1 --publish preset=cpu
    step benchmarks/tune.py --model colarec --split loo --trials 12 --threads 1 --publish preset=cpu
    ;;
esac

