# benchlib.sh - shell functions shared by build/bench.sh,
# build/bench_dbd.sh and build/callgrind.sh. The caller sets WORK, THREADS, CONNS, DURATION,
# SCRIPTS and BENCH_NAME and defines die MESSAGE and server_of URL (the
# sandbox directory serving URL).

# etag_of curl-args...: the ETag of the answer. curl without its "Accept:
# */*": wrk sends no Accept either, and the backend's Vary names it, so both
# must ask for the same representation (each has its own tag,
# docs/directives.md).
etag_of() {
    curl -s -H 'Accept:' -D - -o /dev/null "$@" | etag_header
}

# expect STATUS curl-args...: the request a wrk run repeats must answer
# STATUS, or the numbers would measure something else.
expect() {
    want=$1
    shift
    got=$(curl -s -H 'Accept:' -o /dev/null -w '%{http_code}' "$@")
    [ "$got" = "$want" ] || die "expected $want, got $got from: curl $*"
}

# cpu_ticks DIR: user + system clock ticks used so far by the server in
# DIR: its parent and every child (worker processes, the cgid daemon). A
# CGI's own time is charged to none of them (the cgid daemon's children
# time stays 0), so the CGI rows show none.
cpu_ticks() {
    pp=$(cat "$1/run/httpd.pid")
    for pid in "$pp" $(ps -o pid= --ppid "$pp"); do
        sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null || true
    done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# wrk_run NAME REP URL [SCRIPT [CONNS]]: run wrk, keep "rps p50 p99 avg
# cpu" (latencies and CPU time per request in microseconds) in
# $WORK/r.NAME.REP.
wrk_run() {
    name=$1
    rep=$2
    url=$3
    script=${4:-}
    conns=${5:-$CONNS}
    out=$WORK/wrk.$name.$rep
    server=$(server_of "$url")
    set -- -t "$THREADS" -c "$conns" -d "${DURATION}s" --latency
    if [ -n "$script" ]; then
        set -- "$@" -s "$SCRIPTS/$script"
    fi
    ticks0=$(cpu_ticks "$server")
    wrk "$@" "$url" >"$out" 2>&1 || die "wrk $name failed: $(cat "$out")"
    ticks=$(( $(cpu_ticks "$server") - ticks0 ))
    # 304 is a 3xx, not counted here; anything counted is a failure.
    if grep -q 'Non-2xx' "$out"; then
        die "wrk $name: $(grep 'Non-2xx' "$out")"
    fi
    if grep -q '^failed-writes [1-9]' "$out"; then
        die "wrk $name: $(grep '^failed-writes' "$out")"
    fi
    awk -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /s$/)  return v * 1000000
            return v
        }
        $1 == "Latency" && avg == "" { avg = us($2) }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        $1 == "Requests/sec:" { rps = $2 }
        $2 == "requests" && $3 == "in" { n = $1 }
        END {
            printf "%.0f %.0f %.0f %.0f %.1f\n", rps, p50, p99, avg,
                   n ? ticks * 1000000 / hz / n : 0
        }
    ' "$out" >"$WORK/r.$name.$rep"
    echo "$BENCH_NAME: $name #$rep: $(cat "$WORK/r.$name.$rep")" >&2
}

# median NAME: the per-column median of NAME's runs, into $WORK/r.NAME.
median() {
    for col in 1 2 3 4 5; do
        cat "$WORK/r.$1".* | cut -d' ' -f$col | sort -n |
            awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
    done | paste -sd' ' - >"$WORK/r.$1"
}

# store_add_key STORE KEY: KEY present in the SQLite STORE at the next
# version, last modified an hour ago, unless the store knows it already
# (the parent of the documents a benchmark writes, so that every commit
# bumps it as in a real API).
store_add_key() {
    sqlite3 -cmd '.timeout 10000' "$1" <<EOF
BEGIN IMMEDIATE;
INSERT OR IGNORE INTO resources (key, version, present, mtime, claim_owner,
                                 claim_expires, meta)
SELECT '$2', last + 1, 1, CAST(strftime('%s', 'now') AS INTEGER) - 3600,
       NULL, 0, NULL
FROM sequence WHERE id = 1;
UPDATE sequence SET last = last + 1 WHERE id = 1;
COMMIT;
EOF
}
