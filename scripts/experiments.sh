#!/usr/bin/env bash
# The experiments of docs/experiments.md, each reproducible by one command:
#   scripts/experiments.sh heat          # issue 6: SMoE on the synthetic heat-diffusion task
#   scripts/experiments.sh all
# Each experiment is a function experiment_<name> that trains through `smoecast train`, measures
# the checkpoints and rewrites its own section of docs/experiments.md (between the markers
# <!-- <name>:begin --> and <!-- <name>:end -->).
#
# Environment (defaults in brackets):
#   BUILD [build]                 build directory with smoecast and bench/bench_heat_experiment
#   SMOECAST_BIN [$BUILD/smoecast] the smoecast binary (its directory has bench/)
#   EXP_DOC [docs/experiments.md] the document whose sections are rewritten
#   EXP_DIR [runs/experiments]    data, checkpoints and logs
#   THREADS [0 = all cores]       smoecast --threads
# heat only (the defaults are the acceptance experiment; smaller values give a labelled probe):
#   HEAT_SEEDS ["1 2 3"], HEAT_RUNS_TRAIN [1000], HEAT_RUNS_EVAL [20] (validation and test runs),
#   HEAT_EPOCHS [config: 150], HEAT_STEPS_PER_EPOCH [0 = one pass over all (run, step) pairs],
#   HEAT_MODELS ["smoe dense dense_matched"] plus HEAT_GATES ["conv conv1x1 softmax_topk laplace
#   hmoe attention"]: every other gate on the same task (configs/heat_smoe.yaml with
#   model.moe.gate overridden; a gate that `smoecast train` cannot build is listed as such).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
EXP_DIR=${EXP_DIR:-runs/experiments}
THREADS=${THREADS:-0}
BIN=${SMOECAST_BIN:-$ROOT/$BUILD/smoecast}
MEASURE=$(dirname "$BIN")/bench/bench_heat_experiment
DOC=${EXP_DOC:-$ROOT/docs/experiments.md}

# Replaces the section between <!-- $1:begin --> and <!-- $1:end --> of docs/experiments.md by the
# contents of file $2 (appends the section when the markers are missing).
write_section() {
  local name=$1 body=$2 tmp
  tmp=$(mktemp "$DOC.XXXXXX")
  if grep -q "<!-- $name:begin -->" "$DOC" 2>/dev/null; then
    awk -v b="<!-- $name:begin -->" -v e="<!-- $name:end -->" -v f="$body" '
      $0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
      $0 == e { skip = 0 }
      !skip { print }' "$DOC" > "$tmp"
  else
    { [ -f "$DOC" ] && cat "$DOC"; echo; echo "<!-- $name:begin -->"; cat "$body"; echo "<!-- $name:end -->"; } > "$tmp"
  fi
  mv "$tmp" "$DOC"
}

abspath() { case $1 in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }

# mean and sample standard deviation of the numbers on stdin ("-" when none)
mean_sd() {
  awk '{ if ($1 != "" && $1 != "nan") { n++; s += $1; q += $1 * $1 } }
       END { if (!n) { print "-"; exit }
             m = s / n; v = n > 1 ? (q - n * m * m) / (n - 1) : 0; if (v < 0) v = 0
             printf "%.4g ± %.2g", m, sqrt(v) }'
}

experiment_heat() {
  local seeds=${HEAT_SEEDS:-1 2 3} runs=${HEAT_RUNS_TRAIN:-1000} eval_runs=${HEAT_RUNS_EVAL:-20}
  local models=${HEAT_MODELS:-smoe dense dense_matched}
  local gates=${HEAT_GATES:-conv conv1x1 softmax_topk laplace hmoe attention}
  local dir=$EXP_DIR/heat data=$EXP_DIR/heat/data/heat_dataset.nc
  local extra=()
  [ -n "${HEAT_EPOCHS:-}" ] && extra+=("training.epochs=$HEAT_EPOCHS")
  [ -n "${HEAT_STEPS_PER_EPOCH:-}" ] && extra+=("training.steps_per_epoch=$HEAT_STEPS_PER_EPOCH")
  mkdir -p "$dir/data"
  local stamp="$dir/data/heat.args" want="runs=$runs eval=$eval_runs seed=0"
  if [ ! -f "$data" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== heat: generating $runs + $eval_runs + $eval_runs runs"
    "$BIN" synth heat --out "$dir/data" --seed 0 --runs-train "$runs" --runs-val "$eval_runs" --runs-test "$eval_runs"
    echo "$want" > "$stamp"
  fi
  local variants=() v
  for v in $models; do variants+=("$v"); done
  for v in $gates; do variants+=("gate_$v"); done
  local results=$dir/results.tsv
  : > "$results"
  for v in "${variants[@]}"; do
    local cfg=configs/heat_smoe.yaml over=()
    case $v in
      smoe) ;;
      dense) cfg=configs/heat_dense.yaml ;;
      dense_matched) cfg=configs/heat_dense_matched.yaml ;;
      gate_*) over=("model.moe.gate=${v#gate_}") ;;
    esac
    local s
    for s in $seeds; do
      local out=$dir/$v/seed$s log=$dir/$v/seed$s.log
      mkdir -p "$dir/$v"
      echo "== heat: $v seed $s"
      if "$BIN" train -c "$cfg" --threads "$THREADS" run.seed="$s" data.dataset="$(abspath "$data")" \
           output.dir="$(abspath "$out")" "${over[@]}" "${extra[@]}" > "$log" 2>&1 &&
         "$MEASURE" "$out/best.nc" "$data" > "$out/metrics.txt" 2>> "$log"; then
        awk -v v="$v" -v s="$s" '
          /\.ari / { ari = $2 } /\.mi / { mi = $2 } /\.h_u / { hu = $2 }
          $1 == "mse" { mse = $2 } $1 == "params" { p = $2 }
          END { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\tok\n", v, s, p, mse, (ari == "" ? "nan" : ari),
                       (hu == "" ? "nan" : hu), (mi == "" ? "nan" : mi) }' "$out/metrics.txt" >> "$results"
      else
        local why
        why=$( (grep -m1 -i -E "error|unknown|not |cannot|only|denied" "$log" || tail -1 "$log") | tr '\t|' '  ' | cut -c1-160)
        printf "%s\t%s\t-\tnan\tnan\tnan\tnan\tfailed: %s\n" "$v" "$s" "${why:-see $log}" >> "$results"
        echo "   failed: ${why:-see $log}"
      fi
    done
  done
  heat_table "$results" "$seeds" "$runs" "$eval_runs" > "$dir/section.md"
  write_section heat "$dir/section.md"
  cat "$dir/section.md"
}

# Markdown section from the per-seed results (variant, seed, params, mse, ari, h_u, mi, status).
heat_table() {
  local results=$1 seeds=$2 runs=$3 eval_runs=$4 v
  echo
  echo "Generated by \`scripts/experiments.sh heat\` on $(date -u +%Y-%m-%d) ($("$BIN" --version 2>/dev/null | head -1 || echo "smoecast, version unknown"));"
  echo "data: \`smoecast synth heat --seed 0\`, $runs training runs, $eval_runs validation and $eval_runs test runs;"
  echo "seeds: $seeds; epochs: ${HEAT_EPOCHS:-config (150, early stop 30)}; steps per epoch: ${HEAT_STEPS_PER_EPOCH:-all (run, step) pairs}."
  echo "Test MSE in physical units over every (run, step) pair of the test runs; ARI, H_u (bits), MI (bits)"
  echo "of the gate's argmax / softmax against the true region map (first test batch; see bench/bench_heat_experiment.c)."
  echo
  echo "| model | parameters | test MSE | ARI | ARI per seed | H_u | MI | notes |"
  echo "|---|---|---|---|---|---|---|---|"
  for v in $(cut -f1 "$results" | awk '!seen[$0]++'); do
    local rows params mse ari per hu mi note
    rows=$(awk -F'\t' -v v="$v" '$1 == v' "$results")
    params=$(echo "$rows" | awk -F'\t' '$3 != "-" { print $3; exit }')
    mse=$(echo "$rows" | awk -F'\t' '$8 == "ok" { print $4 }' | mean_sd)
    ari=$(echo "$rows" | awk -F'\t' '$8 == "ok" { print $5 }' | mean_sd)
    per=$(echo "$rows" | awk -F'\t' '$8 == "ok" && $5 != "nan" { printf "%s%.3f", (n++ ? ", " : ""), $5 }')
    hu=$(echo "$rows" | awk -F'\t' '$8 == "ok" { print $6 }' | mean_sd)
    mi=$(echo "$rows" | awk -F'\t' '$8 == "ok" { print $7 }' | mean_sd)
    note=$(echo "$rows" | awk -F'\t' '$8 != "ok" { print $8; exit }')
    echo "| $v | ${params:--} | $mse | $ari | ${per:--} | $hu | $mi | ${note:-} |"
  done
  echo
  awk -F'\t' '
    $8 == "ok" && $1 == "smoe" { n++; s += $4; if ($5 < 0.95 || $5 == "nan") low++ }
    $8 == "ok" && $1 == "dense" { nd++; sd += $4 }
    $8 == "ok" && $1 == "dense_matched" { nm++; sm += $4 }
    END {
      if (!n) { print "Acceptance: no SMoE result."; exit }
      ok1 = !low; ok2 = nd && s / n < sd / nd; ok3 = nm && s / n < sm / nm
      printf "Acceptance (issue 6): ARI >= 0.95 in every seed: %s; mean test MSE below the dense reference: %s; below the parameter-matched dense network: %s.\n",
        ok1 ? "yes" : "NO", ok2 ? "yes" : (nd ? "NO" : "not run"), ok3 ? "yes" : (nm ? "NO" : "not run") }' "$results"
}

case ${1:-} in
  heat) experiment_heat ;;
  all) experiment_heat ;;
  *) echo "usage: scripts/experiments.sh {heat|all}" >&2; exit 1 ;;
esac
