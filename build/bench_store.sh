#!/bin/sh
# bench_store.sh - `make bench-durable`: what one write costs the store,
# unit/bench_durable.c run against both stores, with and without an fsync
# per commit, in both forms of a write (folded: claim + one commit that
# releases and bumps the parent; held: claim + commit holding the claim +
# release bumping the parent). Rounds are interleaved, so a disturbance of
# the (shared) machine hits every row alike; each row reports the median
# and the spread of its rounds. For SQLite as shipped it also counts the
# fsync/fdatasync calls per write (strace, one extra run per form).
#
# The table goes to stdout and into docs/benchmarks.md between the
# bench-store markers (BENCH_DOCS=0 leaves the file alone).
#
# Settings: ROUNDS=3, WRITES=2000 (NORMAL, dbd with synchronous_commit
# off), FULL_WRITES=300 (the rows with an fsync per commit),
# PG_BIN=/usr/lib/postgresql/15/bin (no PostgreSQL: its rows are skipped).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
WRITES=${WRITES:-2000}
FULL_WRITES=${FULL_WRITES:-300}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
NORMAL=$ROOT/unit/bench_durable_normal
FULL=$ROOT/unit/bench_durable_full

WORK=$(mktemp -d /var/tmp/bench_store.XXXXXX)
chmod 755 "$WORK"
RUNAS=""
PG=0
pg_ctl() {
    $RUNAS "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w -t 60 \
        -o "-k $WORK -c listen_addresses='' -c max_connections=50" "$@" \
        >/dev/null
}
cleanup() {
    if [ "$PG" = 1 ]; then
        pg_ctl stop -m immediate || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -x "$PG_BIN/initdb" ]; then
    if [ "$(id -u)" = 0 ]; then
        RUNAS="runuser -u nobody --"
        chown nobody "$WORK"
    fi
    # fsync stays on: synchronous_commit decides whether a commit waits
    # for its WAL flush.
    if $RUNAS "$PG_BIN/initdb" -D "$WORK/pg" -U cond -A trust \
           >"$WORK/initdb.log" 2>&1 && pg_ctl start; then
        PG=1
    else
        echo "bench_store.sh: PostgreSQL did not start; its rows are skipped" >&2
    fi
fi
DBD="dbd:host=$WORK dbname=postgres user=cond connect_timeout=3"

# run NAME PROGRAM SPEC FORM WRITES: one round, "writes/s us" appended to
# $WORK/r.NAME
run() {
    out=$("$2" "$3" "$4" "$5") || { echo "bench_store.sh: $1 failed" >&2; exit 1; }
    echo "$out" >>"$WORK/r.$1"
    echo "bench_store.sh: $1: $out" >&2
}

round() {
    for form in folded held; do
        run "sqlite-normal-$form" "$NORMAL" "sqlite:$WORK/normal.db" $form "$WRITES"
        run "sqlite-full-$form" "$FULL" "sqlite:$WORK/full.db" $form "$FULL_WRITES"
        if [ "$PG" = 1 ]; then
            run "dbd-on-$form" "$NORMAL" "$DBD" $form "$FULL_WRITES"
            run "dbd-off-$form" "$NORMAL" \
                "$DBD options='-c synchronous_commit=off'" $form "$WRITES"
        fi
    done
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
r=1
while [ $r -le "$ROUNDS" ]; do
    round
    r=$((r + 1))
done

# fsyncs per write, SQLite as shipped (the checkpoints' share included)
syncs() {
    strace -f -c -e trace=fsync,fdatasync -o "$WORK/strace.$1" \
        "$NORMAL" "sqlite:$WORK/normal.db" "$1" "$WRITES" >/dev/null
    awk -v n="$WRITES" '$NF == "fsync" || $NF == "fdatasync" { c += $4 }
        END { printf "%.3f", c / n }' "$WORK/strace.$1"
}
if command -v strace >/dev/null; then
    SYNC_FOLDED=$(syncs folded)
    SYNC_HELD=$(syncs held)
else
    SYNC_FOLDED="–"
    SYNC_HELD="–"
fi

# cell NAME: "median writes/s (min–max), median µs"
cell() {
    if [ ! -s "$WORK/r.$1" ]; then
        echo "– | –"
        return
    fi
    sort -n "$WORK/r.$1" | awk '{ w[NR] = $1; u[NR] = $2 }
        END { m = int((NR + 1) / 2)
              printf "**%d** (%d–%d) | %.0f µs", w[m], w[1], w[NR], u[m] }'
}

TABLE=$WORK/table.md
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`make bench-durable\`: $(nproc) CPU(s),"
    echo "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); Linux $(uname -r);"
    echo "SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1)$( [ "$PG" = 1 ] && echo "; PostgreSQL $("$PG_BIN/postgres" --version | sed 's/^[^0-9]*\([0-9.]*\).*/\1/') on a Unix socket"). Load average"
    echo "before the run: $LOAD (the machine is shared with other jobs)."
    echo "One thread, 64 keys whose parent is in the store; median of $ROUNDS"
    echo "interleaved rounds, (min–max) of the rounds."
    echo
    echo "| store | durability | write form | writes/s | per write | fsync per write |"
    echo "|---|---|---|---:|---:|---:|"
    echo "| SQLite | as shipped: WAL, \`synchronous=NORMAL\`, versions reserved durably | folded: claim + commit (2 tx) | $(cell sqlite-normal-folded) | $SYNC_FOLDED |"
    echo "| SQLite | as shipped | held: claim + commit + release (3 tx) | $(cell sqlite-normal-held) | $SYNC_HELD |"
    echo "| SQLite | \`synchronous=FULL\`: an fsync per commit | folded (2 tx) | $(cell sqlite-full-folded) | 2 commits + checkpoints (not counted) |"
    echo "| SQLite | \`synchronous=FULL\` | held (3 tx) | $(cell sqlite-full-held) | 3 commits + checkpoints (not counted) |"
    echo "| PostgreSQL (dbd) | \`synchronous_commit=on\` (default): a WAL flush per commit | folded: 2 statements | $(cell dbd-on-folded) | 2 WAL flushes on the server (not counted) |"
    echo "| PostgreSQL (dbd) | \`synchronous_commit=on\` | held: 3 statements | $(cell dbd-on-held) | 3 WAL flushes on the server (not counted) |"
    echo "| PostgreSQL (dbd) | \`synchronous_commit=off\` | folded: 2 statements | $(cell dbd-off-folded) | 0 |"
    echo "| PostgreSQL (dbd) | \`synchronous_commit=off\` | held: 3 statements | $(cell dbd-off-held) | 0 |"
} >"$TABLE"
cat "$TABLE"
if [ "${BENCH_DOCS:-1}" = 1 ] && [ -f "$ROOT/docs/benchmarks.md" ]; then
    sh "$ROOT/build/docblock.sh" bench-store "$ROOT/docs/benchmarks.md" "$TABLE"
fi
