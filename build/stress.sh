#!/bin/sh
# stress.sh - `make stress`: the long lost-update run (tools/stress.pl)
# against a sandbox httpd (build/sandbox.sh), for each MPM, with faults
# injected while the load runs:
#
#   control    blind PUTs without the module: must lose updates (proves the
#              harness can fail)
#   volume     64 clients on the cheap backend (build/bench/docs.lua)
#   cgi        32 clients on the legacy CGI (t/cgi-bin/docs.cgi)
#   proxy      32 clients through mod_proxy to the CGI
#   slow       16 clients on the CGI, two of them uploading each body over
#              two leases, two writing with their headers first and the
#              write a lease and a second later: claims renewed, no loss
#   kill-cgi   kill -9 of the httpd child serving a slow CGI PUT, 4 times
#   kill-lua   the same with the in-process backend
#   graceful   apache2 -k graceful, twice
#   restart    apache2 -k restart, twice
#   probe-*    three deterministic fault probes (see below)
#
# Then the same module on ConditionalStore dbd, with a PostgreSQL started
# here (Unix socket in the work directory, as the postgres user when run
# as root; MPM event):
#
#   dbd-volume  64 clients on the cheap backend
#   dbd-fast    pg_ctl restart -m fast, twice, under 64 clients
#   dbd-crash   pg_ctl stop -m immediate and start, twice, under load
#
# Every run must end with lost=0 stale_tags=0 stuck_claims=0 errors=0
# (claims are counted after the lease, ConditionalLeaseTime 5, has run
# out), and no child may die of anything but the kills sent here.
#
# The verdict lines go to stdout and into docs/benchmarks.md (section
# Stress; STRESS_DOCS=0 leaves the file alone).
#
# Settings: MPMS="prefork event", PORT=8097, VOLUME_SECONDS=45,
# RUN_SECONDS=20, LOAD=0 runs the probes only, KEEP=1 keeps the sandbox
# directories, DBD=0 skips the dbd runs, PG_BIN=/usr/lib/postgresql/15/bin.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/build/etag.sh"
MPMS=${MPMS:-prefork event}
PORT=${PORT:-8097}
VOLUME_SECONDS=${VOLUME_SECONDS:-45}
RUN_SECONDS=${RUN_SECONDS:-20}
LEASE=5
SANDBOX="sh $ROOT/build/sandbox.sh"
STRESS="perl $ROOT/tools/stress.pl"
BASE=http://127.0.0.1:$PORT
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_UP=0

MODULE_SO=${MODULE_SO:-$ROOT/.libs/mod_conditional.so}
export MODULE_SO
if [ ! -f "$MODULE_SO" ]; then
    echo "stress.sh: $MODULE_SO is missing (make)" >&2
    exit 1
fi
for tool in curl sqlite3 perl; do
    command -v $tool >/dev/null || { echo "stress.sh: $tool missing" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/conditional-stress.XXXXXX)
chmod 755 "$WORK"
DIR=
cleanup() {
    if [ -n "$DIR" ]; then
        $SANDBOX stop "$DIR" >/dev/null 2>&1 || true
    fi
    if [ "$PG_UP" = 1 ]; then
        pg_ctl_do stop -m immediate >/dev/null 2>&1 || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "stress.sh: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS=$WORK/results
: >"$RESULTS"
FAILED=0

# Children that died of a signal other than the kills sent here. The
# mod_cgid daemon dying of SIGPIPE when the worker it answers was killed is
# httpd's own behaviour (it is restarted at once) and is not counted.
crashes() {
    awk '
        /exit signal/ && !/exit signal Killed/ { pending = $0; n++; next }
        /AH01239/ && pending != "" { n--; cgid++ }
        { pending = "" }
        END { print n + 0 }
    ' "$DIR/logs/error.log" 2>/dev/null || echo 0
}

# record NAME LINE: print and keep a verdict line.
record() {
    name=$1
    line=$2
    case $line in
        *verdict=PASS*) ;;
        *) FAILED=1 ;;
    esac
    n=$(crashes)
    if [ "$n" -gt "$CRASHES" ]; then
        FAILED=1
        line="${line% verdict=*} crashes=$((n - CRASHES)) verdict=FAIL"
        grep 'exit signal' "$DIR/logs/error.log" | grep -v Killed | tail -n 3 >&2
    fi
    CRASHES=$n
    printf '%-8s %-9s %s\n' "$MPM" "$name" "$line" | tee -a "$RESULTS"
}

# run NAME stress.pl-arguments...
run() {
    name=$1
    shift
    line=$($STRESS ${STORE:+--store "$STORE"} "$@" \
           2>"$DIR/stress-$name.err" || true)
    [ -n "$line" ] || line="no verdict (see $DIR/stress-$name.err) verdict=FAIL"
    record "$name" "$line"
}

# The pid of an httpd child busy with a slow PUT (one carrying ?sleep=),
# from mod_status; empty when none shows up within 5 s.
slow_put_child() {
    i=0
    while [ $i -lt 50 ]; do
        pid=$(curl -s --max-time 2 "$BASE/server-status?notable" | perl -0ne '
            for (split /<b>Server /) {
                if (m#^\S+</b> \((\d+)\):[^\n]*\[<b>Write</b>\].*?\{PUT [^}]*sleep=#s) {
                    print "$1\n";
                    last;
                }
            }' | head -n 1)
        if [ -n "$pid" ]; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
}

# run_with_faults NAME FAULT COUNT stress.pl-arguments...: FAULT (kill,
# graceful or restart) is injected COUNT times, evenly spread over the run.
run_with_faults() {
    name=$1
    fault=$2
    count=$3
    shift 3
    out=$DIR/stress-$name.out
    $STRESS ${STORE:+--store "$STORE"} --seconds "$RUN_SECONDS" \
        --settle $((LEASE + 1)) "$@" >"$out" 2>"$DIR/stress-$name.err" &
    spid=$!
    step=$((RUN_SECONDS / (count + 1)))
    n=0
    while [ $n -lt "$count" ]; do
        n=$((n + 1))
        sleep "$step"
        case $fault in
            kill)
                victim=$(slow_put_child)
                if [ -n "$victim" ]; then
                    kill -KILL "$victim" 2>/dev/null || true
                    echo "stress.sh: $MPM $name: killed child $victim" >&2
                else
                    echo "stress.sh: $MPM $name: no child with a slow PUT" >&2
                    FAILED=1
                fi
                ;;
            graceful|restart)
                $SANDBOX "$fault" "$DIR" >/dev/null
                echo "stress.sh: $MPM $name: $fault" >&2
                ;;
            pgfast)
                pg_ctl_do restart -m fast
                echo "stress.sh: $MPM $name: pg_ctl restart -m fast" >&2
                ;;
            pgcrash)
                pg_ctl_do stop -m immediate
                sleep 1
                pg_ctl_do start
                echo "stress.sh: $MPM $name: pg_ctl stop -m immediate, start" >&2
                ;;
        esac
    done
    wait "$spid" || true
    line=$(cat "$out")
    [ -n "$line" ] || line="no verdict (see $DIR/stress-$name.err) verdict=FAIL"
    record "$name" "$line"
}

# ------------------------------------------------------------------ probes
#
# Three deterministic checks of the rule the load runs can only catch by
# chance: when the module cannot see how a write ended, no tag handed out
# before it may keep matching a document the write changed.

# tag_of URL BODYFILE: GET URL, save the body, print the ETag.
tag_of() {
    curl -s -D - -o "$2" "$1" | etag_header
}

# check_tag NAME TAG API-URL RAW-URL BODYFILE: if TAG still gets a 304, the
# document (read without the module) must still be BODYFILE, the
# representation TAG was issued for.
check_tag() {
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $2" "$3")
    curl -s -o "$WORK/now" "$4"
    if [ "$code" = 304 ] && ! cmp -s "$WORK/now" "$5"; then
        record "$1" "If-None-Match $2: 304, but the document changed from $(cat "$5") to $(cat "$WORK/now") verdict=FAIL"
    else
        record "$1" "If-None-Match $2: $code; document $(cat "$WORK/now") verdict=PASS"
    fi
}

# A child killed while its CGI write sleeps: the CGI outlives it and writes
# 3 s later. Another client then writes (stale tag first, then a fresh
# one); its acknowledged document and tag must survive the late write.
probe_kill() {
    doc=probe-kill-$MPM
    curl -s -o /dev/null -X PUT -d '{"v":0}' "$BASE/raw/docs/$doc"
    e1=$(tag_of "$BASE/api/docs/$doc" "$WORK/b1")
    curl -s -o /dev/null -X PUT -H "If-Match: $e1" -d '{"v":"killed"}' \
        "$BASE/api/docs/$doc?sleep=3" &
    cpid=$!
    victim=$(slow_put_child)
    if [ -z "$victim" ]; then
        wait "$cpid" || true
        record probe-kill "no child with the slow PUT found verdict=FAIL"
        return
    fi
    kill -KILL "$victim" 2>/dev/null || true
    wait "$cpid" || true
    curl -s -o /dev/null -X PUT -H "If-Match: $e1" -d '{"v":"B"}' \
        "$BASE/api/docs/$doc"
    e3=
    i=0
    while [ -z "$e3" ] && [ $i -lt 20 ]; do
        i=$((i + 1))
        e2=$(tag_of "$BASE/api/docs/$doc" "$WORK/b2")
        if [ -n "$e2" ]; then
            e3=$(curl -s -D - -o "$WORK/b3" -X PUT -H "If-Match: $e2" \
                    -d '{"v":"B"}' "$BASE/api/docs/$doc" | etag_header)
        fi
        [ -n "$e3" ] || sleep 0.5
    done
    if [ -z "$e3" ]; then
        record probe-kill "the write after the kill never succeeded verdict=FAIL"
        return
    fi
    sleep 4
    check_tag probe-kill "$e3" "$BASE/api/docs/$doc" "$BASE/raw/docs/$doc" \
        "$WORK/b3"
}

# apache2 -k restart after a write's backend has written but before it
# answers (the cheap backend's ?after=3).
probe_restart() {
    doc=probe-restart-$MPM
    curl -s -o /dev/null -X PUT -d '{"v":0}' "$BASE/luaraw/docs/$doc"
    e1=$(tag_of "$BASE/lua/docs/$doc" "$WORK/b1")
    curl -s -o /dev/null -X PUT -H "If-Match: $e1" -d '{"v":"new"}' \
        "$BASE/lua/docs/$doc?after=3" &
    cpid=$!
    sleep 1
    $SANDBOX restart "$DIR" >/dev/null
    wait "$cpid" || true
    sleep 3
    check_tag probe-restart "$e1" "$BASE/lua/docs/$doc" \
        "$BASE/luaraw/docs/$doc" "$WORK/b1"
}

# A proxy that times out (502) while its backend completes the write.
probe_timeout() {
    doc=probe-timeout-$MPM
    curl -s -o /dev/null -X PUT -d '{"v":0}' "$BASE/raw/docs/$doc"
    e1=$(tag_of "$BASE/proxy1/docs/$doc" "$WORK/b1")
    curl -s -o /dev/null -X PUT -H "If-Match: $e1" -d '{"v":"late"}' \
        "$BASE/proxy1/docs/$doc?sleep=2" || true
    sleep 2.5
    check_tag probe-timeout "$e1" "$BASE/proxy1/docs/$doc" \
        "$BASE/raw/docs/$doc" "$WORK/b1"
}

for MPM in $MPMS; do
    DIR=$WORK/$MPM
    STORE=$DIR/store/conditional.db
    CRASHES=0
    MPM=$MPM PORT=$PORT LEASE=$LEASE LOCKWAIT=10 STATUS=1 MODULE=1 \
        $SANDBOX start "$DIR"

    if [ "${LOAD:-1}" = 1 ]; then
        run control --url "$BASE/luaraw/" --mode blind --expect-loss \
            --clients 64 --keys 16 --hot 2 --seconds 5
        run volume --url "$BASE/lua/" --clients 64 --keys 256 --hot 8 \
            --hot-ratio 0.6 --reads 0.3 --seconds "$VOLUME_SECONDS"
        run cgi --url "$BASE/api/" --clients 32 --keys 32 --hot 4 \
            --seconds "$RUN_SECONDS"
        run proxy --url "$BASE/proxy/" --raw "$BASE/raw/" --clients 32 \
            --keys 32 --hot 4 --seconds "$RUN_SECONDS"
        run slow --url "$BASE/api/" --clients 16 --keys 16 --hot 0 \
            --seconds "$RUN_SECONDS" --settle $((LEASE + 1)) \
            --slow-uploaders 2 --upload-seconds $((2 * LEASE)) \
            --early-writers 2 --early-sleep $((LEASE + 1))
        run_with_faults kill-cgi kill 4 --url "$BASE/api/" --clients 32 \
            --keys 8 --hot 0 --sleep 3 --sleep-ratio 0.3
        run_with_faults kill-lua kill 4 --url "$BASE/lua/" --clients 64 \
            --keys 64 --hot 4 --sleep 1 --sleep-ratio 0.05
        run_with_faults graceful graceful 2 --url "$BASE/lua/" --clients 64 \
            --keys 64 --hot 4 --sleep 0.5 --sleep-ratio 0.02
        run_with_faults restart restart 2 --url "$BASE/lua/" --clients 64 \
            --keys 64 --hot 4 --sleep 0.5 --sleep-ratio 0.02
    fi

    probe_kill
    probe_restart
    probe_timeout

    $SANDBOX stop "$DIR"
    DIR=
done

# ------------------------------------------------------------------ dbd

PGRUN=
pg_ctl_do() {
    $PGRUN "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w -t 60 \
        -o "-k $WORK/pg -c listen_addresses='' -c fsync=off -c max_connections=300" \
        "$@" >/dev/null
}

if [ "${DBD:-1}" = 1 ] && [ "${LOAD:-1}" = 1 ] && [ -x "$PG_BIN/initdb" ]; then
    mkdir -p "$WORK/pg"
    if [ "$(id -u)" = 0 ]; then
        PGRUN="runuser -u postgres --"
        chown postgres "$WORK/pg"
    fi
    $PGRUN "$PG_BIN/initdb" -D "$WORK/pg/data" -U cond -A trust --no-sync \
        >/dev/null
    pg_ctl_do start
    PG_UP=1
    $PGRUN "$PG_BIN/createdb" -h "$WORK/pg" -U cond cond
    MPM=event
    DIR=$WORK/dbd
    STORE=
    CRASHES=0
    MPM=$MPM PORT=$PORT LEASE=$LEASE LOCKWAIT=10 STATUS=1 MODULE=1 \
        DBD="host=$WORK/pg dbname=cond user=cond connect_timeout=3" \
        $SANDBOX start "$DIR"
    run dbd-volume --url "$BASE/lua/" --clients 64 --keys 64 --hot 8 \
        --hot-ratio 0.6 --reads 0.3 --seconds "$RUN_SECONDS"
    run_with_faults dbd-fast pgfast 2 --url "$BASE/lua/" --clients 64 \
        --keys 64 --hot 4 --sleep 0.5 --sleep-ratio 0.02 --max-retries 2000
    run_with_faults dbd-crash pgcrash 2 --url "$BASE/lua/" --clients 64 \
        --keys 64 --hot 4 --sleep 0.5 --sleep-ratio 0.02 --max-retries 2000
    $SANDBOX stop "$DIR"
    DIR=
    pg_ctl_do stop -m fast
    PG_UP=0
fi

total=$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$RESULTS" | awk '{ s += $1 } END { print s + 0 }')
if [ "$FAILED" = 0 ]; then verdict=PASS; else verdict=FAIL; fi
summary="$(wc -l <"$RESULTS") runs, $total operations, verdict=$verdict"
echo "stress: $summary"

# The result replaces the block between the stress markers in
# docs/benchmarks.md (STRESS_DOCS=0 leaves the file alone).
if [ "${STRESS_DOCS:-1}" = 1 ] && [ "${LOAD:-1}" = 1 ] \
    && [ -f "$ROOT/docs/benchmarks.md" ]; then
    {
        echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`make stress\`: $(nproc) CPU(s),"
        echo "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1);"
        echo "$(/usr/sbin/apache2 -v | sed -n 's/^Server version: //p'); MPMs $MPMS."
        echo "**$summary.**"
        echo
        echo '```text'
        cat "$RESULTS"
        echo '```'
    } >"$WORK/block.md"
    sh "$ROOT/build/docblock.sh" stress "$ROOT/docs/benchmarks.md" "$WORK/block.md"
fi

exit $FAILED
