#!/bin/sh
# bench.sh - `make bench`: what mod_conditional costs and saves, measured
# with wrk on loopback against three sandbox servers (build/sandbox.sh, MPM
# event, access log off): A loads the module, B does not, C is A with a
# store of BIGKEYS keys.
#
#   1  module 304 (/api/, If-None-Match)  vs httpd's static-file 304; the
#      same on the cheap backend (/lua/) and in front of mod_proxy (/proxy/)
#   1  the same 304 in the quick handler (ConditionalQuickHandler On, A's
#      virtual host on PORT_A+4) vs a LuaQuickHandler 304 (httpd's floor,
#      A's virtual host on PORT_A+5) and vs the static-file 304
#   2  module 304                         vs the CGI's 200 without the module
#   3  module 304                         vs a CGI that answers 304 itself
#   4  GET 200 with the module            vs without (CGI, cheap backend)
#   5  conditional PUT: overhead per write and sustained commits/s
#   6  304 on random keys, 1 000 keys     vs 1 000 000 keys in the store
#      (all of them, and 1 000 neighbouring ones)
#   7  memory per httpd child (RSS, anonymous, file-backed, PSS), module
#      loaded vs not, after the 1M run
#      (against D, a fourth server without the module, started for it)
#
# Every case but the CGI ones runs REPS times (the three of 6: SCALE_REPS),
# interleaved with the other cases so that a disturbance hits all of them
# alike, and the median of each column is reported. Besides wrk's figures
# each run records the CPU time the server's processes used per request
# (user + system, from /proc), which leaves wrk's own share of the CPUs
# out. The table goes to stdout and replaces the
# block between the bench markers in docs/benchmarks.md (BENCH_DOCS=0
# leaves the file alone).
#
# Settings: DURATION=4 (s per wrk run), REPS=3, SCALE_REPS=5, THREADS=2,
# CONNS=16, BENCH_MPM=event, PORT_A=8093 (B, C and D use the next three,
# A's quick and floor virtual hosts the two after), BIGKEYS=1000000,
# KEEP=1 keeps the servers' directory.
# ONLY="q304 floor304 ..." runs only those cases (of CASES below), REPS
# times each, prints their medians ("req/s p50 p99 avg cpu") and leaves
# docs/benchmarks.md alone: to try a case, not to measure.
# WRITES_ONLY=1 runs only the rows 5 (the write path), REPS times, prints
# only them and puts them into docs/benchmarks.md (bench-writes markers).
#
# The rows 5 with the module write to keys whose parent (/lua/docs) is in
# the store, so every commit also bumps it (ConditionalInvalidateParent,
# on by default). While they run, the size of A's WAL file is sampled
# every 20 ms; its largest size is printed under the table.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/build/etag.sh"
DURATION=${DURATION:-4}
REPS=${REPS:-3}
SCALE_REPS=${SCALE_REPS:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
BENCH_MPM=${BENCH_MPM:-event}
PORT_A=${PORT_A:-8093}
PORT_B=$((PORT_A + 1))
PORT_C=$((PORT_A + 2))
PORT_D=$((PORT_A + 3))
PORT_Q=$((PORT_A + 4))
PORT_F=$((PORT_A + 5))
BIGKEYS=${BIGKEYS:-1000000}
A=http://127.0.0.1:$PORT_A
B=http://127.0.0.1:$PORT_B
C=http://127.0.0.1:$PORT_C
D=http://127.0.0.1:$PORT_D
Q=http://127.0.0.1:$PORT_Q
F=http://127.0.0.1:$PORT_F
SANDBOX="sh $ROOT/build/sandbox.sh"
SCRIPTS=$ROOT/build/bench

MODULE_SO=${MODULE_SO:-$ROOT/.libs/mod_conditional.so}
export MODULE_SO
if [ ! -f "$MODULE_SO" ]; then
    echo "bench.sh: $MODULE_SO is missing (make)" >&2
    exit 1
fi
for tool in wrk curl sqlite3 awk; do
    command -v $tool >/dev/null || { echo "bench.sh: $tool missing" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/conditional-bench.XXXXXX)
chmod 755 "$WORK"
watcher=
cleanup() {
    # a run that died inside wal_watch leaves its sampler behind
    [ -z "$watcher" ] || kill "$watcher" 2>/dev/null || true
    for s in a b c d; do
        $SANDBOX stop "$WORK/$s" >/dev/null 2>&1 || true
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "bench.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
MPM=$BENCH_MPM PORT=$PORT_A MODULE=1 ACCESSLOG=0 QUICK_PORT=$PORT_Q \
    FLOOR_PORT=$PORT_F $SANDBOX start "$WORK/a"
MPM=$BENCH_MPM PORT=$PORT_B MODULE=0 ACCESSLOG=0 $SANDBOX start "$WORK/b"
MPM=$BENCH_MPM PORT=$PORT_C MODULE=1 ACCESSLOG=0 $SANDBOX start "$WORK/c"
STORE_A=$WORK/a/store/conditional.db
STORE_C=$WORK/c/store/conditional.db
# A static file last changed long ago, so httpd's own ETag is strong.
touch -d '-1 hour' "$WORK/a/htdocs/static/doc.json"

die() { echo "bench.sh: $*" >&2; exit 1; }

server_of() {
    case $1 in
        "$A"*|"$Q"*|"$F"*) echo "$WORK/a" ;;
        "$B"*) echo "$WORK/b" ;;
        "$C"*) echo "$WORK/c" ;;
        *)     echo "$WORK/d" ;;
    esac
}
BENCH_NAME=bench.sh
. "$ROOT/build/benchlib.sh"

# wal_watch CMD...: run CMD while sampling the size of A's WAL file every
# 20 ms; the largest size seen by any run goes to $WORK/wal.max.
wal_watch() {
    (
        while :; do
            stat -c %s "$STORE_A-wal" 2>/dev/null || true
            sleep 0.02
        done
    ) >>"$WORK/wal.sizes" &
    watcher=$!
    "$@"
    kill "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    watcher=
    sort -n "$WORK/wal.sizes" | tail -n 1 >"$WORK/wal.max"
}

# paired A B COL OP: A's and B's runs of one repetition taken together
# (they ran one after the other, seconds apart, so a VM whose speed
# drifts between repetitions moves both): "median (min–max)" over the
# repetitions of A's column COL divided by B's (OP /) or less B's (OP -).
paired() {
    for f in "$WORK/r.$1".*; do
        rep=${f##*.}
        [ -f "$WORK/r.$2.$rep" ] || continue
        printf '%s %s\n' "$(cut -d' ' -f"$3" "$f")" \
            "$(cut -d' ' -f"$3" "$WORK/r.$2.$rep")"
    done | awk -v op="$4" '{ print op == "/" ? $1 / $2 : $1 - $2 }' |
        sort -g | awk -v op="$4" '{ v[NR] = $1 }
            END { f = op == "/" ? "%.2f" : "%+.1f"
                  printf f " (" f "–" f ")", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

# spread NAME COL: "min–max" of column COL over NAME's runs.
spread() {
    cat "$WORK/r.$1".* | cut -d' ' -f"$2" | sort -n |
        awk '{ v[NR] = $1 } END { printf "%s–%s", v[1], v[NR] }'
}

# ---------------------------------------------------------------- fixtures

curl -s -o /dev/null -X PUT -d '{"n":1}' "$A/raw/docs/bench"
curl -s -o /dev/null -X PUT -d '{"n":1}' "$B/raw/docs/bench"
curl -s -o /dev/null -X PUT -d '{"n":1}' "$C/raw/docs/bench"
TAG=$(etag_of "$A/api/docs/bench")
[ -n "$TAG" ] || die "no ETag from $A/api/docs/bench"
STATIC_TAG=$(etag_of "$A/static/doc.json")
case $STATIC_TAG in W/*|"") die "static ETag not strong: $STATIC_TAG" ;; esac
SELF_TAG=$(etag_of "$A/selfetag/docs/bench")
[ -n "$SELF_TAG" ] || die "no ETag from $A/selfetag/docs/bench"
[ -n "$(etag_of "$C/api/docs/bench")" ] || die "no ETag from $C/api/docs/bench"
LUA_TAG=$(etag_of "$A/lua/docs/bench")
[ -n "$LUA_TAG" ] || die "no ETag from $A/lua/docs/bench"
PROXY_TAG=$(etag_of "$A/proxy/docs/bench")
[ -n "$PROXY_TAG" ] || die "no ETag from $A/proxy/docs/bench"
# The quick virtual host's own key; this 200, without credentials, is what
# lets its 304s be answered in the quick handler.
QUICK_TAG=$(etag_of "$Q/api/docs/bench")
[ -n "$QUICK_TAG" ] || die "no ETag from $Q/api/docs/bench"

expect 304 -H "If-None-Match: $TAG" "$A/api/docs/bench"
expect 304 -H "If-None-Match: $LUA_TAG" "$A/lua/docs/bench"
expect 304 -H "If-None-Match: $PROXY_TAG" "$A/proxy/docs/bench"
expect 304 -H "If-None-Match: $STATIC_TAG" "$A/static/doc.json"
expect 304 -H "If-None-Match: $QUICK_TAG" "$Q/api/docs/bench"
expect 304 -H "If-None-Match: $QUICK_TAG" "$F/api/docs/bench"
expect 304 -H "If-None-Match: $SELF_TAG" "$A/selfetag/docs/bench"
expect 200 "$A/raw/docs/bench"
expect 200 "$A/lua/docs/bench"
expect 200 "$A/luaraw/docs/bench"
expect 200 "$B/luaraw/docs/bench"
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o /dev/null -X PUT -d '{"n":0}' "$A/luaraw/docs/pw$i"
done

# The store key of /api/docs/bench shows the key format (host:port/path).
KEY=$(sqlite3 -cmd '.timeout 5000' "$STORE_A" \
    "SELECT key FROM resources WHERE key LIKE '%:$PORT_A/api/docs/bench'")
[ -n "$KEY" ] || die "no store key for /api/docs/bench"
HOSTPART=$(echo "${KEY%/api/docs/bench}" | sed 's/:[0-9]*$//')

# seed STORE PORT N: N present keys for /api/docs/bk1..bkN in one
# transaction, versions from the store's sequence; prints the version base.
# Each key holds the metadata a 200 without Accept would have left (the
# CGI's "Vary: Accept", no Accept sent: variant.c's format), so its tag
# gets a 304 without a first 200.
seed() {
    sqlite3 -cmd '.timeout 10000' "$1" <<EOF
BEGIN IMMEDIATE;
CREATE TEMP TABLE b AS SELECT last AS v FROM sequence WHERE id = 1;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $3)
INSERT INTO resources (key, version, present, mtime, claim_owner,
                       claim_expires, meta)
SELECT '$HOSTPART:$2/api/docs/bk' || i, (SELECT v FROM b) + i, 1,
       CAST(strftime('%s', 'now') AS INTEGER) - 3600, NULL, 0,
       printf('variants 2 %x' || char(10) || '= - accept' || char(10)
              || 'ETag: "%s-%x"' || char(10) || 'Vary: Accept' || char(10)
              || 'Cache-Control: max-age=60' || char(10),
              (SELECT v FROM b) + i, (SELECT value FROM meta
                                      WHERE name = 'identity'),
              (SELECT v FROM b) + i) FROM c;
UPDATE sequence SET last = last + $3 WHERE id = 1;
SELECT v FROM b;
COMMIT;
EOF
}
store_id() {
    sqlite3 -cmd '.timeout 5000' "$1" \
        "SELECT value FROM meta WHERE name = 'identity'"
}

STOREID_A=$(store_id "$STORE_A")
STOREID_C=$(store_id "$STORE_C")
case $TAG in
    "\"$STOREID_A-"*) ;;
    *) die "ETag $TAG does not start with the store identity $STOREID_A" ;;
esac
VBASE_A=$(seed "$STORE_A" "$PORT_A" 1000)
# The parent of the rows 5's documents, so their commits bump it.
store_add_key "$STORE_A" "$HOSTPART:$PORT_A/lua/docs"
t0=$(date +%s.%N)
VBASE_C=$(seed "$STORE_C" "$PORT_C" "$BIGKEYS")
# 1 000 keys that are neighbours in the store's key order (bk500001 ..
# bk501000 sort together), so they live on a handful of pages.
NEARKEY=$((BIGKEYS / 2 + 1))
SEED_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
NROWS_A=$(sqlite3 "$STORE_A" 'SELECT count(*) FROM resources')
NROWS_C=$(sqlite3 "$STORE_C" 'SELECT count(*) FROM resources')
DBSIZE_C=$(du -m "$STORE_C" | cut -f1)
expect 304 -H "If-None-Match: \"$STOREID_A-$(printf %x $((VBASE_A + 7)))\"" \
    "$A/api/docs/bk7"
expect 304 -H "If-None-Match: \"$STOREID_C-$(printf %x $((VBASE_C + BIGKEYS / 2)))\"" \
    "$C/api/docs/bk$((BIGKEYS / 2))"
expect 304 -H "If-None-Match: \"$STOREID_C-$(printf %x $((VBASE_C + NEARKEY + 999)))\"" \
    "$C/api/docs/bk$((NEARKEY + 999))"

# ---------------------------------------------------------------- runs

bench_case() {
    case $1 in
        m304)      INM=$TAG wrk_run "$1" "$2" "$A/api/docs/bench" inm.lua ;;
        m304lua)   INM=$LUA_TAG wrk_run "$1" "$2" "$A/lua/docs/bench" inm.lua ;;
        m304proxy) INM=$PROXY_TAG wrk_run "$1" "$2" "$A/proxy/docs/bench" inm.lua ;;
        s304)      INM=$STATIC_TAG wrk_run "$1" "$2" "$A/static/doc.json" inm.lua ;;
        q304)      INM=$QUICK_TAG wrk_run "$1" "$2" "$Q/api/docs/bench" inm.lua ;;
        floor304)  INM=$QUICK_TAG wrk_run "$1" "$2" "$F/api/docs/bench" inm.lua ;;
        cgi200)    wrk_run "$1" "$2" "$A/raw/docs/bench" ;;
        self304)   INM=$SELF_TAG wrk_run "$1" "$2" "$A/selfetag/docs/bench" inm.lua ;;
        apicgi200) wrk_run "$1" "$2" "$A/api/docs/bench" ;;
        lua200)    wrk_run "$1" "$2" "$A/lua/docs/bench" ;;
        lua200s)   wrk_run "$1" "$2" "$A/lua/docs/bench" "" "$THREADS" ;;
        luaraw200s) wrk_run "$1" "$2" "$A/luaraw/docs/bench" "" "$THREADS" ;;
        m304s)     INM=$TAG wrk_run "$1" "$2" "$A/api/docs/bench" inm.lua "$THREADS" ;;
        s304s)     INM=$STATIC_TAG wrk_run "$1" "$2" "$A/static/doc.json" inm.lua "$THREADS" ;;
        luaraw200) wrk_run "$1" "$2" "$A/luaraw/docs/bench" ;;
        nomod200)  wrk_run "$1" "$2" "$B/luaraw/docs/bench" ;;
        putcond)   MODE=cond PUTPATH=/lua/docs/pw \
                       wal_watch wrk_run "$1" "$2" "$A" putchain.lua "$THREADS" ;;
        putraw)    MODE=blind PUTPATH=/luaraw/docs/pw \
                       wrk_run "$1" "$2" "$A" putchain.lua "$THREADS" ;;
        putcommit) NKEYS=1000 PUTPATH=/lua/docs/pr \
                       wal_watch wrk_run "$1" "$2" "$A" putrand.lua ;;
        putnocommit) NKEYS=1000 PUTPATH=/luaraw/docs/pr \
                       wrk_run "$1" "$2" "$A" putrand.lua ;;
        k1k)       NKEYS=1000 VBASE=$VBASE_A STOREID=$STOREID_A \
                       PATHPREFIX=/api/docs/bk wrk_run "$1" "$2" "$A" rand304.lua ;;
        k1m)       NKEYS=$BIGKEYS VBASE=$VBASE_C STOREID=$STOREID_C \
                       PATHPREFIX=/api/docs/bk wrk_run "$1" "$2" "$C" rand304.lua ;;
        k1mnear)   NKEYS=1000 FIRSTKEY=$NEARKEY VBASE=$VBASE_C \
                       STOREID=$STOREID_C PATHPREFIX=/api/docs/bk \
                       wrk_run "$1" "$2" "$C" rand304.lua ;;
        warm)      INM=$STATIC_TAG_D wrk_run "$1" "$2" "$D/static/doc.json" inm.lua ;;
        *)         die "no case $1" ;;
    esac
}

CASES="m304 s304 q304 floor304 m304lua m304proxy lua200 luaraw200 nomod200 m304s s304s lua200s
       luaraw200s putcond putraw putcommit putnocommit"
SCALE_CASES="k1k k1m k1mnear"
# A CGI request takes a fork and an interpreter: one run each is enough.
CGI_CASES="cgi200 self304 apicgi200"
if [ -n "${ONLY:-}" ]; then
    CASES=$ONLY
    SCALE_CASES=""
    CGI_CASES=""
    SCALE_REPS=0
fi
if [ "${WRITES_ONLY:-0}" = 1 ]; then
    CASES="putcommit putnocommit putcond putraw"
    SCALE_CASES=""
    CGI_CASES=""
    SCALE_REPS=0
fi
for name in $CGI_CASES; do
    bench_case $name 1
done
rep=1
while [ $rep -le "$REPS" ] || [ $rep -le "$SCALE_REPS" ]; do
    if [ $rep -le "$REPS" ]; then
        for name in $CASES; do
            bench_case $name $rep
        done
    fi
    if [ $rep -le "$SCALE_REPS" ]; then
        for name in $SCALE_CASES; do
            bench_case $name $rep
        done
    fi
    rep=$((rep + 1))
done
for name in $CASES $SCALE_CASES $CGI_CASES; do
    median "$name"
done
if [ -n "${ONLY:-}" ]; then
    for name in $CASES; do
        echo "$name: $(cat "$WORK/r.$name")"
    done
    exit 0
fi

# ---------------------------------------------------------------- 7: memory

if [ "${WRITES_ONLY:-0}" != 1 ]; then
# D is C without the module: same configuration, a fresh server that gets
# a 304 load of its own (httpd's static 304) so that its workers have run
# requests too. B is no baseline here: its workers have run Lua states.
MPM=$BENCH_MPM PORT=$PORT_D MODULE=0 ACCESSLOG=0 $SANDBOX start "$WORK/d"
touch -d '-1 hour' "$WORK/d/htdocs/static/doc.json"
STATIC_TAG_D=$(etag_of "$D/static/doc.json")
expect 304 -H "If-None-Match: $STATIC_TAG_D" "$D/static/doc.json"
bench_case warm 1
# mem DIR: "count rss anon file pss", averages in KiB over the worker
# processes (under a threaded MPM the single-threaded cgid daemon is left
# out). anon is private memory; file counts mapped files, the store's
# mapping among them: pages of the OS's page cache, shared by every process
# that maps them. PSS charges each process its share of shared pages.
mem() {
    for pid in $(ps -o pid=,nlwp= --ppid "$(cat "$1/run/httpd.pid")" |
                 awk -v mpm="$BENCH_MPM" 'mpm == "prefork" || $2 > 1 { print $1 }'); do
        awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 }
             /^RssFile:|^RssShmem:/ { f += $2 }
             END { printf "%d %d %d ", r, a, f }' "/proc/$pid/status"
        awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup"
    done | awk '{ n++; for (i = 1; i <= 4; i++) s[i] += $i }
        END { printf "%d", n; for (i = 1; i <= 4; i++) printf " %d", n ? s[i] / n : 0; print "" }'
}
MEM_C=$(mem "$WORK/c")
MEM_D=$(mem "$WORK/d")
fi

# ---------------------------------------------------------------- report

rps() { cut -d' ' -f1 "$WORK/r.$1"; }
p50() { cut -d' ' -f2 "$WORK/r.$1"; }
p99() { cut -d' ' -f3 "$WORK/r.$1"; }
cpu() { cut -d' ' -f5 "$WORK/r.$1"; }
cpu_diff() { awk -v a="$(cpu "$1")" -v b="$(cpu "$2")" 'BEGIN { printf "%+.1f", a - b }'; }
cpu_ratio() { awk -v a="$(cpu "$1")" -v b="$(cpu "$2")" 'BEGIN { printf "%.2f", b / a }'; }
ratio() { awk -v a="$(rps "$1")" -v b="$(rps "$2")" 'BEGIN { printf "%.2f", a / b }'; }
pct() { awk -v a="$(rps "$1")" -v b="$(rps "$2")" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'; }
p50_diff() { awk -v a="$(p50 "$1")" -v b="$(p50 "$2")" 'BEGIN { printf "%+d", a - b }'; }
fmt_us() { awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.2f ms", v / 1000; else printf "%d µs", v }'; }
row() {
    # row LABEL NAME [RATIO-TEXT]; CGI rows have no CPU figure (see cpu_ticks)
    case " $CGI_CASES " in
        *" $2 "*) c="–" ;;
        *) c="$(cpu "$2") µs" ;;
    esac
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(rps "$2")" \
        "$(fmt_us "$(p50 "$2")")" "$(fmt_us "$(p99 "$2")")" "$c" "${3:-}"
}
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
HTTPD_V=$(/usr/sbin/apache2 -v | sed -n 's/^Server version: //p')
SQLITE_V=$(sqlite3 --version | cut -d' ' -f1)
WRK_V=$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)

write_rows() {
    row "5. PUT with If-Match, each commits; 1 connection per thread (\`/lua/\`)" putcond \
        "**$(p50_diff putcond putraw) µs** per write (p50); CPU $(cpu_diff putcond putraw) µs"
    row "5. the same PUTs, no module, no precondition (\`/luaraw/\`)" putraw
    row "5. PUT to 1 000 keys, $CONNS connections: claim + commit each, parent bumped (\`/lua/\`)" putcommit \
        "**$(rps putcommit) commits/s** = **$(ratio putcommit putnocommit)×** no module (runs: $(spread putcommit 1)); p99 **$(p99_ratio putcommit putnocommit)×** (runs: $(spread putcommit 3) µs); CPU **$(cpu_diff putcommit putnocommit) µs** per write; each run against the no-module run beside it: $(paired putcommit putnocommit 1 /)×, CPU $(paired putcommit putnocommit 5 -) µs"
    row "5. the same PUTs without the module (\`/luaraw/\`)" putnocommit \
        "runs: $(spread putnocommit 1) req/s, p99 $(spread putnocommit 3) µs"
}
p99_ratio() { awk -v a="$(p99 "$1")" -v b="$(p99 "$2")" 'BEGIN { printf "%.1f", a / b }'; }
WAL_MAX=$(cat "$WORK/wal.max" 2>/dev/null || echo 0)
TABLE=$WORK/table.md
if [ "${WRITES_ONLY:-0}" = 1 ]; then
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`make bench\` WRITES_ONLY=1: $(nproc) CPU(s),"
    echo "$CPU; load average before the run: $LOAD."
    echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, median of $REPS interleaved runs."
    echo
    echo "| request | req/s | p50 | p99 | CPU | ratio (same run) |"
    echo "|---|---:|---:|---:|---:|---|"
    write_rows
    echo
    echo "Largest size of the store's WAL during the write rows: **$WAL_MAX bytes**."
} >"$TABLE"
cat "$TABLE"
if [ "${BENCH_DOCS:-1}" = 1 ] && [ -f "$ROOT/docs/benchmarks.md" ]; then
    sh "$ROOT/build/docblock.sh" bench-writes "$ROOT/docs/benchmarks.md" "$TABLE"
fi
exit 0
fi
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`make bench\`: $(nproc) CPU(s),"
    echo "$CPU; Linux $(uname -r); $HTTPD_V, MPM $BENCH_MPM;"
    echo "SQLite $SQLITE_V; $WRK_V. Load average before the run: $LOAD."
    echo "wrk -t$THREADS -c$CONNS -d${DURATION}s on 127.0.0.1 (wrk and httpd share the"
    echo "CPUs), access log off, median of $REPS interleaved runs (CGI rows: one run;"
    echo "rows 6: $SCALE_REPS). CPU: user + system time of the server's processes per request."
    echo
    echo "| request | req/s | p50 | p99 | CPU | ratio (same run) |"
    echo "|---|---:|---:|---:|---:|---|"
    row "1. module 304, backend not run (\`/api/\`, If-None-Match)" m304
    row "1. httpd's static-file 304 (\`/static/\`, FileETag)" s304 \
        "module / static = **$(ratio m304 s304)** (target ≥ 1.0); CPU $(cpu_diff m304 s304) µs"
    row "1. module 304 in the quick handler (ConditionalQuickHandler On, \`/api/\`)" q304 \
        "quick / static = **$(ratio q304 s304)** (target ≥ 1.15); CPU $(cpu_diff q304 s304) µs"
    row "1. httpd's floor: a LuaQuickHandler that answers 304" floor304 \
        "quick / floor = **$(ratio q304 floor304)** (target ≥ 0.95); CPU $(cpu_diff q304 floor304) µs"
    row "1. module 304 on the cheap backend (\`/lua/\`: httpd still walks the missing path under DocumentRoot)" m304lua \
        "module / static = $(ratio m304lua s304)"
    row "1. module 304 in front of mod_proxy (\`/proxy/\`: httpd maps no file)" m304proxy \
        "module / static = **$(ratio m304proxy s304)**; CPU $(cpu_diff m304proxy s304) µs"
    row "2. CGI 200 without the module (\`/raw/\`)" cgi200 \
        "module 304 / CGI 200 = **$(ratio m304 cgi200)×**"
    row "3. CGI that computes its ETag and answers 304 itself (\`/selfetag/\`)" self304 \
        "module 304 / self-304 = **$(ratio m304 self304)×**"
    row "4. CGI 200 through the module, tagged (\`/api/\`)" apicgi200 \
        "vs \`/raw/\`: $(pct apicgi200 cgi200) (CGI noise)"
    row "4. cheap backend 200 through the module, tagged (\`/lua/\`)" lua200 \
        "vs module Off: **$(pct lua200 luaraw200)** (target ≥ −5%); CPU $(cpu_diff lua200 luaraw200) µs"
    row "4. cheap backend 200, module loaded but Off (\`/luaraw/\`)" luaraw200 \
        "vs not loaded: $(pct luaraw200 nomod200)"
    row "4. cheap backend 200, module not loaded (server B)" nomod200
    row "1. module 304, 1 connection per thread (\`/api/\`)" m304s \
        "**$(p50_diff m304s s304s) µs** vs static (p50)"
    row "1. static-file 304, 1 connection per thread" s304s
    row "4. cheap backend 200 through the module, 1 connection per thread" lua200s \
        "**$(p50_diff lua200s luaraw200s) µs** per GET (p50)"
    row "4. the same with the module Off" luaraw200s
    write_rows
    row "6. module 304, random keys, store of $NROWS_A keys (A)" k1k
    row "6. module 304, random keys of all $NROWS_C in the store (C)" k1m \
        "big / small = **$(ratio k1m k1k)** (target ≥ 0.9); CPU $(cpu_diff k1m k1k) µs, ratio $(cpu_ratio k1m k1k)"
    row "6. module 304, 1 000 neighbouring keys of the $NROWS_C-key store (C)" k1mnear \
        "big / small = **$(ratio k1mnear k1k)**; CPU $(cpu_diff k1mnear k1k) µs, ratio $(cpu_ratio k1mnear k1k)"
    echo
    echo "Largest size of A's WAL file during the write rows (5): **$WAL_MAX bytes**."
    echo
    echo "7. Memory per httpd worker process after the runs above, in KiB (averages"
    echo "from /proc/PID/status and smaps_rollup): C with the module and the"
    echo "$NROWS_C-key store ($DBSIZE_C MB, seeded in one transaction in $SEED_SECS s),"
    echo "after the rows 6 on it, against D: C's configuration without the module,"
    echo "after a static-304 load. File-backed pages (libraries, the store's mapping)"
    echo "are the OS's page cache, held once however many processes map them; PSS"
    echo "charges each process its share."
    echo
    echo "| workers | RSS | anonymous (private) | file-backed (shared) | PSS |"
    echo "|---|---:|---:|---:|---:|"
    echo "$MEM_C" | awk '{ printf "| C: module, %d | %d | %d | %d | %d |\n", $1, $2, $3, $4, $5 }'
    echo "$MEM_D" | awk '{ printf "| D: no module, %d | %d | %d | %d | %d |\n", $1, $2, $3, $4, $5 }'
    printf '%s\n%s\n' "$MEM_C" "$MEM_D" | awk 'NR == 1 { split($0, c) } NR == 2 {
        printf "| difference | %+d | **%+d** | %+d | %+d |\n", c[2] - $2, c[3] - $3, c[4] - $4, c[5] - $5 }'
} >"$TABLE"
cat "$TABLE"

if [ "${BENCH_DOCS:-1}" = 1 ] && [ -f "$ROOT/docs/benchmarks.md" ]; then
    sh "$ROOT/build/docblock.sh" bench "$ROOT/docs/benchmarks.md" "$TABLE"
fi
