# The demo's live digest (scripts/demo.sh) of run/log/signals.log: each symbol's SIGNAL when the
# model's action changes, next to the live book's ACK for that same symbol and bar, said in words,
# and a tally every 100 bars.
#
#   awk -v quiet=0|1 -f scripts/lib/digest.awk signals.log
#
# A signals.log line is `<time> <connection> <direction> <line>` (`<` received, `>` sent). The ACK of
# a bar can arrive after the next bar's SIGNAL, so a SIGNAL and its ACK are paired by symbol and
# `B:`, never by arrival. What an OK did is told from PROTOCOL.md §4 "ACK": every change closes what
# the book holds first, then opens at most one position; `T:` is the position now held (the one
# just closed, for WAIT) and `P:` its fill price (its entry price when no order was needed). The
# digest remembers each symbol's position from the ACKs before, so it can name what was closed.

function header() {
  if (quiet) return
  printf "%-8s  %-7s  %-14s  %6s  %12s  %-20s    %s\n", "time", "symbol", "model action", \
    "regime", "virtual PnL", "bar (open, UTC)", "live book: ACK, what it did"
  fflush()
}

function flush_tally(   k) {
  printf "  -- bars %d-%d (to %s): %d signals, live ACK", nbars - 99, nbars, bar, nsig
  for (k in tally) printf " %s=%d", k, tally[k]
  printf "\n"; fflush(); delete tally; nsig = 0; header()
}

function field(line, key) {
  if (!match(line, "\\|" key ":[^|]*")) return ""
  return substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
}

function at(p) { return p != "" ? " at " p : "" }

# What the live book did for this ACK, in words; updates the symbol's remembered position.
function what_it_did(sym, act, outcome, reason, t, p,   old, was, s) {
  old = held[sym]; was = held_act[sym]
  if (outcome == "FAIL") {
    # The position is what it was, or flat if a close went through and the open failed.
    if (old != "") unsure[sym] = 1
    return "FAIL " reason ": not followed"
  }
  if (outcome == "WAIT_SYNC") {
    # The closes went through (a failed one is a FAIL); the late entry is not made.
    s = "WAIT_SYNC " reason ": not entered late"
    if (old != "") s = s ", closed #" old " (" was ")"
    held[sym] = ""; unsure[sym] = 0
    return s
  }
  if (outcome != "OK") return outcome " " reason
  if (act == "WAIT") {
    s = t != "" ? "OK, closed #" t " (" (was != "" ? was : "position") ")" at(p) : "OK, flat (nothing to close)"
    held[sym] = ""; unsure[sym] = 0
    return s
  }
  if (t != "" && t == old) s = "OK, holds #" t " (" act ", entry" at(p) ")"
  else if (unsure[sym]) s = "OK, holds #" t " (" act ", opened" at(p) "; anything held before is closed)"
  else if (old != "") s = "OK, closed #" old " (" was "), opened #" t " (" act ")" at(p)
  else s = "OK, opened #" t " (" act ")" at(p)
  held[sym] = t; held_act[sym] = act; unsure[sym] = 0
  return s
}

function start_up_note() {
  print "  note: each twin's position comes from history: a model may already hold a position when"
  print "        the replay starts, while the live book starts flat. The executor never enters late, at"
  print "        a price the model did not get: it answers WAIT_SYNC MISSED_ENTRY and joins the model at"
  print "        its next entry. The summary counts these as start-up, apart from the steady state."
}

BEGIN { header() }

$3 == "<" && $4 ~ /^SIGNAL\|/ {
  split($4, f, "|"); sym = f[2]; act = f[3]; b = field($4, "B")
  # A new bar: the tally of the 100 bars before it first (this signal counts in the next one).
  if (b != bar) { if (bar != "") { nbars++; if (nbars % 100 == 0) flush_tally() } bar = b }
  nsig++
  if (act != last[sym]) shown[sym "|" b] = sprintf("%-8s  %-7s  %-14s  %6s  %12s  %-20s", \
    substr($1, 12, 8), sym, act, f[4], f[5], b)
  last[sym] = act; next
}

$3 == ">" && $4 ~ /^ACK\|/ {
  split($4, f, "|"); sym = f[2]; key = sym "|" field($4, "B")
  tally[f[4] (f[4] == "OK" ? "" : "|" f[5])]++
  what = what_it_did(sym, f[3], f[4], f[4] == "OK" ? "" : f[5], field($4, "T"), field($4, "P"))
  if (!quiet && (key in shown)) {
    # Said once, before the first one: a trader otherwise reads the start as the executor not
    # following the model.
    if (f[4] == "WAIT_SYNC" && f[5] == "MISSED_ENTRY" && !explained) { start_up_note(); explained = 1 }
    printf "%s →  %s\n", shown[key], what; fflush()
  }
  delete shown[key]; next
}

# The whole ERROR line: its text has spaces.
$3 == ">" && $4 ~ /^ERROR\|/ { print "  executor: " substr($0, index($0, $4)); fflush() }
