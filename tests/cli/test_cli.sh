# The CLI surface: global help and version, every command's --help, unknown commands and options,
# bad configs and overrides with their exit codes and messages.
. "$(dirname "$0")/lib.sh"

expect_exit 0 "usage: smoecast" -- "$BIN" --help
expect_exit 0 "^smoecast [0-9]+\.[0-9]+\.[0-9]+" -- "$BIN" --version
expect_exit 1 "usage: smoecast" -- "$BIN"
expect_exit 1 "unknown command 'frobnicate'; valid commands: synth ingest inspect train" -- "$BIN" frobnicate
expect_exit 1 "unknown option '--bogus'" -- "$BIN" --bogus

# Every listed command has --help with usage, options and an example.
commands=$("$BIN" --help | awk '/^commands:/{f=1;next} /^$/{f=0} f{print $1}')
[ -n "$commands" ] || fail "no commands listed in --help"
for c in $commands; do
  out=$("$BIN" "$c" --help 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "$c --help exited $rc: $out"; continue; fi
  grep -q "usage: smoecast $c" <<<"$out" || fail "$c --help lacks usage line"
  grep -q "example" <<<"$out" || fail "$c --help lacks an example"
  ok "$c --help"
done

printf 'training:\n  lr_sheduler: cosine\n' > "$TMP/bad.yaml"
expect_exit 1 "bad.yaml:2: unknown key 'training.lr_sheduler' \(did you mean 'training.lr_scheduler'\?\)" -- "$BIN" config -c "$TMP/bad.yaml"
printf 'training:\n  epochs: many\n' > "$TMP/type.yaml"
expect_exit 1 "type.yaml:2: training.epochs expects an integer, got 'many'" -- "$BIN" config -c "$TMP/type.yaml"
expect_exit 2 "missing.yaml: cannot open" -- "$BIN" config -c "$TMP/missing.yaml"
expect_exit 1 "override 'training.lr=fast': training.lr expects a number" -- "$BIN" config training.lr=fast
expect_exit 0 "lr: 0.0003" -- "$BIN" config training.lr=3e-4

# Round trip: the printed config is accepted back unchanged.
"$BIN" config model.moe.experts=8 data.dataset=x.nc > "$TMP/a.yaml" || fail "config print"
"$BIN" config -c "$TMP/a.yaml" > "$TMP/b.yaml" || fail "config reload"
cmp -s "$TMP/a.yaml" "$TMP/b.yaml" && ok "config round trip" || fail "config round trip differs"
# Every shipped config is valid.
for f in "$SRC"/configs/*.yaml; do
  "$BIN" config -c "$f" >/dev/null 2>"$TMP/err" && ok "config $(basename "$f")" || fail "config $(basename "$f"): $(cat "$TMP/err")"
done
finish
