# Helpers shared by tests/cli/test_plot*.sh (sourced after lib.sh): PNG size from the IHDR
# chunk, validity and non-blank checks, colours at map positions of the documented layout.
# GMT 6.4 leaks a few strings it duplicates internally (gmt_init_module, GMT_psconvert, ...):
# suppress exactly those in the sanitizer build.
export LSAN_OPTIONS="suppressions=$SRC/tests/lsan_gmt.supp:print_suppressions=0"
PY=/usr/bin/python3
CHECK="$SRC/tests/cli/plot_png_check.py"
[ -x "$PY" ] || skip_or_fail "$PY missing"

png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'; }
is_png() { [ "$(od -An -c -N4 "$1" | tr -d ' ')" = "211PNG" ]; }
# cm -> pixels as the program rounds them
px() { awk -v cm="$1" -v dpi="$2" 'BEGIN{v=cm/2.54*dpi; printf "%d", int(v+0.5)}'; }

check_png() { # FILE WIDTH [HEIGHT] -- valid PNG, exact size, not blank
  local f=$1 w=$2 h=${3:-}
  [ -s "$f" ] || { fail "$f missing"; return 1; }
  is_png "$f" || { fail "$f is not a PNG"; return 1; }
  read -r gw gh <<<"$(png_size "$f")"
  [ "$gw" = "$w" ] || { fail "$f is $gw px wide, expected $w"; return 1; }
  if [ -n "$h" ] && [ "$gh" != "$h" ]; then fail "$f is $gh px high, expected $h"; return 1; fi
  read -r sw sh var ncol <<<"$($PY "$CHECK" "$f" stats)"
  [ "$sw $sh" = "$gw $gh" ] || { fail "$f: decoder says $sw x $sh, IHDR $gw x $gh"; return 1; }
  awk -v v="$var" 'BEGIN{exit !(v > 100)}' || { fail "$f looks blank (grey variance $var)"; return 1; }
  [ "$ncol" -gt 8 ] || { fail "$f has only $ncol colours"; return 1; }
  ok "$f: ${gw}x${gh} px, grey variance $var, $ncol colours"
}

# Colours at fractional map positions (fx from the left, fy from the top of the map frame's
# bounding box) with the documented layout: left 1.6 cm, right 0.8 cm, top 1.8 cm, bottom 3.0 cm
# (horizontal colour bar or legend). Prints one "R G B" line per "FX FY" pair.
map_colours() { # FILE DPI FX FY [FX FY ...]
  local f=$1 dpi=$2; shift 2
  local w h pts
  read -r w h <<<"$(png_size "$f")"
  pts=$(awk -v w="$w" -v h="$h" -v d="$dpi" -v args="$*" 'BEGIN{
    n = split(args, a, " "); c = d / 2.54; l = 1.6*c; t = 1.8*c; mw = w - 2.4*c; mh = h - 4.8*c;
    for (i = 1; i < n; i += 2) printf "%d %d ", l + a[i]*mw, t + a[i+1]*mh }')
  # shellcheck disable=SC2086
  $PY "$CHECK" "$f" pixel 3 $pts
}
# expect_colours FILE DPI "NAME:R G B:FX FY" ...
expect_colours() {
  local f=$1 dpi=$2; shift 2
  local pos="" spec
  for spec in "$@"; do pos="$pos ${spec##*:}"; done
  # shellcheck disable=SC2086
  mapfile -t got < <(map_colours "$f" "$dpi" $pos)
  local i=0
  for spec in "$@"; do
    local name=${spec%%:*} rest=${spec#*:}
    local want=${rest%%:*}
    [ "${got[$i]:-}" = "$want" ] && ok "$name: $want" || fail "$name: expected $want, got ${got[$i]:-nothing}"
    i=$((i + 1))
  done
}
BLUE="31 119 180"; ORANGE="255 127 14"; GREEN="44 160 44"; RED="214 39 40"

bad() { # CODE PATTERN OUT ARGS...: one-line error, exit CODE, no OUT left behind
  local code=$1 pat=$2 out=$3; shift 3
  local msg rc
  msg=$("$BIN" plot "$@" --out "$out" 2>&1); rc=$?
  if [ "$rc" != "$code" ]; then fail "plot $* exited $rc, expected $code: $msg"; return; fi
  grep -qE -- "$pat" <<<"$msg" || { fail "plot $* output lacks /$pat/: $msg"; return; }
  [ "$(wc -l <<<"$msg")" -eq 1 ] || { fail "error for plot $* is not one line: $msg"; return; }
  [ ! -e "$out" ] || { fail "plot $* left $out behind"; return; }
  ok "plot $* -> $rc: $msg"
}
W=$(px 16 150)
