# Helpers shared by scripts/bench.sh and scripts/bench-payment.sh (sourced,
# not run). They expect REPO (the checkout) and, for server_ticks,
# SERVER_PIDS (every server) or SERVER_PID (the one server) to be set by
# the caller.

# The commit and working tree a binary is built from (others may commit or
# edit while a benchmark runs).
git_state() {
  local c d
  c=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  d=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
  if ((d > 0)); then echo "$c (+$d modified files)"; else echo "$c"; fi
}

# utime + stime of the server(s), in clock ticks.
server_ticks() {
  local pid sum=0
  for pid in "${SERVER_PIDS[@]:-$SERVER_PID}"; do
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)
# CPU ticks of the local PostgreSQL server's processes: each live one's own
# time plus its reaped children's (a backend that exits during a run is
# counted in the postmaster's cutime/cstime).
pg_ticks() {
  local f line t=0
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    [[ $line == *"(postgres)"* ]] || continue
    line=${line##*) }
    set -- $line
    t=$((t + ${12} + ${13} + ${14} + ${15}))
  done
  echo "$t"
}
# Busy and steal ticks of the whole machine ("cpu" line of /proc/stat).
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# How busy the machine is without us: percent of all CPUs over 5 s.
machine_busy() {
  local a b
  a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
  sleep 5
  b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
    printf "%.0f", (y[1] - x[1]) / (y[2] - x[2]) * 100 }'
}

to_ms() { # wrk duration (850.00us, 5.44ms, 1.02s, 2.00m) -> milliseconds
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.0f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.1f", v * 1000 }
    else print v }'
}
# Deltas between two /metrics snapshots for ROUTE, from the server's own
# counters: "requests requests_not_200 mean_ms p99_bucket".
metrics_delta() { # before_file after_file route
  python3 - "$@" <<'PY'
import re, sys
def parse(path, route):
    # Sums over every server's snapshot in the file (scripts/bench.sh
    # --servers N writes them one after the other).
    reqs, not200, buckets, total, count = 0, 0, {}, 0.0, 0
    lab = 'route="%s"' % route
    for line in open(path, encoding="utf-8"):
        if lab not in line:
            continue
        name, value = line.rsplit(" ", 1)
        value = float(value)
        if name.startswith("certhall_http_requests_total"):
            reqs += value
            if 'status="200"' not in name:
                not200 += value
        elif name.startswith("certhall_http_request_duration_seconds_bucket"):
            le = re.search(r'le="([^"]*)"', name).group(1)
            buckets[le] = buckets.get(le, 0) + value
        elif name.startswith("certhall_http_request_duration_seconds_sum"):
            total += value
        elif name.startswith("certhall_http_request_duration_seconds_count"):
            count += value
    return reqs, not200, buckets, total, count
b, a = parse(sys.argv[1], sys.argv[3]), parse(sys.argv[2], sys.argv[3])
reqs, not200, n = a[0] - b[0], a[1] - b[1], a[4] - b[4]
mean = (a[3] - b[3]) / n * 1000 if n else 0.0
p99 = "-"
for le in sorted(a[2], key=lambda x: float("inf") if x == "+Inf" else float(x)):
    if n and a[2][le] - b[2].get(le, 0) >= 0.99 * n:
        p99 = "+Inf" if le == "+Inf" else "%g" % (float(le) * 1000)
        break
print("%d %d %.3f %s" % (reqs, not200, mean, p99))
PY
}
# user+sys seconds of this shell's waited-for children, from `times` output
# saved in FILE (`times` must run in the main shell, not in $(...)).
children_cpu() {
  tail -1 "$1" | awk '{ split($1, a, /[ms]/); split($2, b, /[ms]/)
    printf "%.2f", a[1] * 60 + a[2] + b[1] * 60 + b[2] }'
}
