# Neural post-processing under mpirun (label mpi): `postprocess fit` on 2 ranks reduces its
# validation sums over ranks (val_reduce), so the validation CRPS / RMSE / spread-skill in
# metrics.jsonl equal the 1-rank run's (each rank scores only its share of the validation set).
. "$(dirname "$0")/lib.sh"
[ "${SMOECAST_HAVE_MPI:-0}" = 1 ] || skip_or_fail "built without MPI"
MPIRUN=${SMOECAST_MPIRUN:-mpirun}
need_tool "$MPIRUN"
MPI=("$MPIRUN" --oversubscribe)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
cd "$TMP"
. "$(dirname "$0")/postprocess_lib.sh"
expect_exit 0 "epoch 2: train .* \(t2m crps" -- "$BIN" postprocess fit -c cfg.yaml output.dir=one
expect_exit 0 "epoch 2: train .* \(t2m crps" -- "${MPI[@]}" -np 2 "$BIN" postprocess fit -c cfg.yaml output.dir=two
scores() { grep -o '"val_\(crps\|rmse\|ssr\)": {"t2m": [0-9.e+-]*' "$1" | sed 's/.*: //'; }
n1=$(scores one/metrics.jsonl | wc -l)
if [ "$n1" = 6 ] && paste <(scores one/metrics.jsonl) <(scores two/metrics.jsonl) |
     awk '{ d = $1 - $2; if (d < 0) d = -d; if (!(d <= 1e-5 * ($1 < 0 ? -$1 : $1) + 1e-9)) bad = 1 } END { exit bad }'; then
  ok "validation CRPS, RMSE and spread/skill of 2 ranks == 1 rank ($(scores two/metrics.jsonl | tr '\n' ' '))"
else
  fail "validation scores differ: 1 rank $(scores one/metrics.jsonl | tr '\n' ' '); 2 ranks $(scores two/metrics.jsonl | tr '\n' ' ')"
fi
finish
