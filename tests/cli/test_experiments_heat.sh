# scripts/experiments.sh heat on a tiny configuration (2 training runs, 20 steps, one seed):
# generates the heat dataset through `smoecast synth heat`, trains the SMoE and both dense
# networks through `smoecast train`, measures them with bench/bench_heat_experiment, lists a gate
# the config rejects as failed, and a point-gated gate as a result row, and rewrites only its own section of the document.
source "$(dirname "$0")/lib.sh"
[ -x "$(dirname "$BIN")/bench/bench_heat_experiment" ] || skip_or_fail "bench_heat_experiment not built"
doc=$TMP/doc.md
printf '# Experiments\n\nkept above\n\n<!-- heat:begin -->\nold\n<!-- heat:end -->\n\nkept below\n' > "$doc"
out=$(SMOECAST_BIN="$BIN" EXP_DIR="$TMP/exp" EXP_DOC="$doc" HEAT_RUNS_TRAIN=2 HEAT_RUNS_EVAL=1 \
      HEAT_EPOCHS=1 HEAT_STEPS_PER_EPOCH=20 HEAT_SEEDS=1 HEAT_GATES='softmax_topk no_such_gate' THREADS=1 \
      bash "$SRC/scripts/experiments.sh" heat 2>&1) || fail "experiments.sh heat failed: $out"
[ -f "$TMP/exp/heat/data/heat_dataset.nc" ] || fail "heat_dataset.nc not generated"
for v in smoe dense dense_matched; do
  grep -qE "^\| $v \| 1 \| [0-9]+ \| [0-9.e+-]+ ± " "$doc" || fail "no result row for $v: $(cat "$doc")"
done
grep -qE '^\| smoe \| 1 \| 12315 \|' "$doc" || fail "SMoE parameter count is not 12315"
grep -qE '^\| dense \| 1 \| 225 \|' "$doc" || fail "dense reference parameter count is not 225"
grep -qE '^\| dense_matched \| 1 \| 12385 \|' "$doc" || fail "matched dense parameter count is not 12385"
grep -qE '^\| gate_softmax_topk \| 1 \| [0-9]+ \| [0-9.e+-]+ ± ' "$doc" || fail "no result row for the point-gated softmax_topk"
grep -qE '^\| gate_no_such_gate \|.*failed: .*no_such_gate' "$doc" || fail "a gate the config rejects is not listed as failed"
grep -q '^Acceptance (issue 6): ' "$doc" || fail "acceptance line missing"
grep -q 'kept above' "$doc" && grep -q 'kept below' "$doc" || fail "text outside the markers was not kept"
grep -q '^old$' "$doc" && fail "old section content not replaced"
metrics=$TMP/exp/heat/smoe/seed1/metrics.txt
grep -qE '^conv0\.ari -?[0-9.]+$' "$metrics" || fail "metrics lack the gate ARI: $(cat "$metrics")"
[ "$FAILS" = 0 ] && ok "experiments.sh heat"
exit $((FAILS > 0))
