#!/bin/sh
# bench_dbd.sh - the `make bench` rows for ConditionalStore dbd, next to
# SQLite in the same run: two sandbox servers (build/sandbox.sh, MPM event,
# access log off) in front of the cheap backend (/lua/), one on the SQLite
# store (S), one on a PostgreSQL this script starts (P: initdb/pg_ctl, Unix
# socket in the work directory, fsync off, as the postgres user when run as
# root), both through the same module build.
#
#   d1  module 304 on dbd      vs the module 304 on SQLite (ratio)
#   d2  GET 200, tagged, on dbd vs on SQLite
#   d3  PUT to 1 000 keys, claim + commit each: commits/s on dbd vs SQLite
#
# Cases alternate S and P, REPS times each; medians are reported. The rows
# go to stdout and replace the block between the bench-dbd markers in
# docs/benchmarks.md (BENCH_DOCS=0 leaves the file alone).
#
# Settings: DURATION=4, REPS=3, THREADS=2, CONNS=16, PORT_S=8097 (P: +1),
# PG_BIN=/usr/lib/postgresql/15/bin, KEEP=1 keeps the work directory.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/build/etag.sh"
DURATION=${DURATION:-4}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
PORT_S=${PORT_S:-8097}
PORT_P=$((PORT_S + 1))
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
S=http://127.0.0.1:$PORT_S
P=http://127.0.0.1:$PORT_P
SANDBOX="sh $ROOT/build/sandbox.sh"
SCRIPTS=$ROOT/build/bench

[ -x "$PG_BIN/initdb" ] || { echo "bench_dbd.sh: $PG_BIN/initdb missing" >&2; exit 1; }
[ -f "$ROOT/.libs/mod_conditional.so" ] || { echo "bench_dbd.sh: make first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/conditional-bench-dbd.XXXXXX)
chmod 755 "$WORK"
PGUSER_RUN=
if [ "$(id -u)" = 0 ]; then
    PGUSER_RUN="runuser -u postgres --"
    mkdir "$WORK/pg"
    chown postgres "$WORK/pg"
fi
pg() {
    $PGUSER_RUN "$PG_BIN/$@"
}
pg_ctl_do() {
    pg pg_ctl -D "$WORK/pg/data" -l "$WORK/pg/log" -w -t 60 \
        -o "-k $WORK/pg -c listen_addresses='' -c fsync=off -c max_connections=200" \
        "$@" >/dev/null
}
cleanup() {
    for s in s p; do
        $SANDBOX stop "$WORK/$s" >/dev/null 2>&1 || true
    done
    pg_ctl_do stop -m immediate 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "bench_dbd.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "bench_dbd.sh: $*" >&2; exit 1; }

pg initdb -D "$WORK/pg/data" -U cond -A trust --no-sync >/dev/null
pg_ctl_do start
pg createdb -h "$WORK/pg" -U cond cond

MPM=event PORT=$PORT_S MODULE=1 ACCESSLOG=0 $SANDBOX start "$WORK/s"
MPM=event PORT=$PORT_P MODULE=1 ACCESSLOG=0 \
    DBD="host=$WORK/pg dbname=cond user=cond connect_timeout=3" \
    $SANDBOX start "$WORK/p"

server_of() {
    case $1 in
        "$S"*) echo "$WORK/s" ;;
        *)     echo "$WORK/p" ;;
    esac
}
BENCH_NAME=bench_dbd.sh
. "$ROOT/build/benchlib.sh"

# ---------------------------------------------------------------- fixtures

for u in "$S" "$P"; do
    curl -s -o /dev/null -X PUT -d '{"n":1}' "$u/luaraw/docs/bench"
done
TAG_S=$(etag_of "$S/lua/docs/bench")
TAG_P=$(etag_of "$P/lua/docs/bench")
[ -n "$TAG_S" ] && [ -n "$TAG_P" ] || die "no ETag (S: $TAG_S, P: $TAG_P)"
expect 304 -H "If-None-Match: $TAG_S" "$S/lua/docs/bench"
expect 304 -H "If-None-Match: $TAG_P" "$P/lua/docs/bench"

bench_case() {
    case $1 in
        s304)    INM=$TAG_S wrk_run "$1" "$2" "$S/lua/docs/bench" inm.lua ;;
        p304)    INM=$TAG_P wrk_run "$1" "$2" "$P/lua/docs/bench" inm.lua ;;
        s200)    wrk_run "$1" "$2" "$S/lua/docs/bench" ;;
        p200)    wrk_run "$1" "$2" "$P/lua/docs/bench" ;;
        sput)    NKEYS=1000 PUTPATH=/lua/docs/pr wrk_run "$1" "$2" "$S" putrand.lua ;;
        pput)    NKEYS=1000 PUTPATH=/lua/docs/pr wrk_run "$1" "$2" "$P" putrand.lua ;;
    esac
}
CASES="s304 p304 s200 p200 sput pput"
rep=1
while [ $rep -le "$REPS" ]; do
    for c in $CASES; do
        bench_case $c $rep
    done
    rep=$((rep + 1))
done
for c in $CASES; do
    median $c
done

col() { cut -d' ' -f"$2" "$WORK/r.$1"; }
ratio() { awk -v a="$(col "$1" 1)" -v b="$(col "$2" 1)" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
row() {
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(col "$2" 1)" \
        "$(col "$2" 2)" "$(col "$2" 3)" "$(col "$2" 5)" "$3"
}
TABLE=$WORK/table
{
    echo "| case (\`/lua/\`, $CONNS connections, MPM event) | req/s | p50 µs | p99 µs | CPU µs/req | vs SQLite |"
    echo "|---|---|---|---|---|---|"
    row "d1. module 304, SQLite store" s304 ""
    row "d1. module 304, dbd store (PostgreSQL, Unix socket)" p304 "**$(ratio p304 s304)**"
    row "d2. GET 200 tagged, SQLite" s200 ""
    row "d2. GET 200 tagged, dbd" p200 "$(ratio p200 s200)"
    row "d3. PUT to 1 000 keys (claim + commit), SQLite: commits/s" sput ""
    row "d3. PUT to 1 000 keys (claim + commit), dbd: commits/s" pput "$(ratio pput sput)"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) at the end; medians of $REPS runs of ${DURATION} s."
} >"$TABLE"
cat "$TABLE"

DOC=$ROOT/docs/benchmarks.md
if [ "${BENCH_DOCS:-1}" = 1 ] && grep -q '<!-- bench-dbd:start -->' "$DOC"; then
    awk -v table="$TABLE" '
        /<!-- bench-dbd:start -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
        /<!-- bench-dbd:end -->/ { skip = 0 }
        !skip { print }
    ' "$DOC" >"$DOC.new" && mv "$DOC.new" "$DOC"
fi
