#!/bin/sh
# callgrind.sh - what one 304 costs, in instructions: a single-process
# httpd (prefork, -X) under valgrind's callgrind, collecting only inside
# ap_process_request (reading the request line and headers, the same for
# every case, is left out) and dumping once per request. Deterministic,
# so it can be read on a busy machine where `make bench` cannot; it
# counts instructions, not time (cache misses, system calls and the
# store's locks are not in it). docs/benchmarks.md has the results.
#
#   sh build/callgrind.sh                 the table, from .libs/mod_conditional.so
#   MODULE_SO=/path/x.so sh build/callgrind.sh      another build
#   N=20 (requests per case; the median of the last N-5 is printed)
#   PORT=8493 (the quick and floor virtual hosts use PORT+4 and PORT+5)
#   KEEP=1 keeps the directory with one callgrind file per request, for
#   callgrind_annotate
#   WRITES=1 the write path instead (below); GETS=1 a tagged GET 200
#
# Cases, each a GET with If-None-Match answered 304, one connection each:
#   m304      the module's default path (/api/, the CGI under ScriptAlias)
#   q304      the same key's 304 in the quick handler (ConditionalQuickHandler)
#   s304      httpd's static-file 304 (/static/, FileETag)
#   floor304  a LuaQuickHandler answering 304 (build/bench/quick304.lua)
# With WRITES=1, PUTs without a precondition on the cheap backend, round
# robin over 5 documents that exist, as make bench's sustained writes:
#   put       through the module (/lua/): claim, backend, commit that also
#             bumps the parent (/lua/docs, put in the store first)
#   putraw    the same PUTs with the module Off (/luaraw/)
# and the difference, the module's share of a write. Its system calls are
# not in it: strace -c of the same PUTs counts those. GETS=1 does the same
# with plain GETs of those documents (get: tagged 200s, the key's metadata
# unchanged; getraw: the module Off).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/build/etag.sh"
. "$ROOT/build/benchlib.sh"
MODULE_SO=${MODULE_SO:-$ROOT/.libs/mod_conditional.so}
N=${N:-20}
PORT=${PORT:-8493}
QPORT=$((PORT + 4))
FPORT=$((PORT + 5))
TOOLS="valgrind curl"
KIND=304
[ "${WRITES:-0}" != 1 ] || KIND=put
[ "${GETS:-0}" != 1 ] || KIND=get
[ $KIND = 304 ] || TOOLS="$TOOLS sqlite3"
for tool in $TOOLS; do
    command -v $tool >/dev/null || { echo "callgrind.sh: $tool missing" >&2; exit 1; }
done
[ -f "$MODULE_SO" ] || { echo "callgrind.sh: $MODULE_SO is missing (make)" >&2; exit 1; }

OUT=$(mktemp -d /tmp/conditional-callgrind.XXXXXX)
chmod 777 "$OUT"
D=$OUT/sbx
VG=
cleanup() {
    [ -z "$VG" ] || kill "$VG" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "callgrind.sh: kept $OUT" >&2; else rm -rf "$OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MODULE_SO=$MODULE_SO MPM=prefork PORT=$PORT QUICK_PORT=$QPORT \
    FLOOR_PORT=$FPORT MODULE=1 ACCESSLOG=0 \
    sh "$ROOT/build/sandbox.sh" conf "$D" >/dev/null 2>&1
touch -d '-1 hour' "$D/htdocs/static/doc.json"
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" \
    --collect-atstart=no --toggle-collect=ap_process_request \
    --dump-after=ap_process_request \
    /usr/sbin/apache2 -d "$D" -f "$D/httpd.conf" -X >"$OUT/valgrind.log" 2>&1 &
VG=$!
i=0
until curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/static/doc.json"; do
    i=$((i + 1))
    [ $i -lt 240 ] || { echo "callgrind.sh: httpd did not answer" >&2; exit 1; }
    sleep 0.5
done

# write_fixtures: the documents the PUTs go to, known to the store, and
# their parent, which the store must know for a commit to bump it.
write_fixtures() {
    for k in 1 2 3 4 5; do
        curl -s -o /dev/null -X PUT -d '{"n":1}' "$B/lua/docs/cg$k"
        curl -s -o /dev/null -X PUT -d '{"n":1}' "$B/luaraw/docs/cr$k"
    done
    child=$(sqlite3 -cmd '.timeout 10000' "$D/store/conditional.db" \
            "SELECT key FROM resources WHERE key LIKE '%/lua/docs/cg1'")
    store_add_key "$D/store/conditional.db" "${child%/cg1}"
}
B=http://127.0.0.1:$PORT
if [ $KIND != 304 ]; then
    write_fixtures
fi
curl -s -o /dev/null -X PUT -d '{"n":1}' "http://127.0.0.1:$PORT/raw/docs/bench"
TAG=$(etag_of "http://127.0.0.1:$PORT/api/docs/bench")
QTAG=$(etag_of "http://127.0.0.1:$QPORT/api/docs/bench")
STAG=$(etag_of "http://127.0.0.1:$PORT/static/doc.json")
sleep 1
# Dumps so far (the fixtures), plus the file of the last part.
start=$(ls "$OUT" | grep -c '^cg\.out')

: >"$OUT/cases"
# run NAME STATUS URL [curl args]: N requests, each answered STATUS; an
# @ in URL becomes 1..5 in turn.
run() {
    name=$1
    want=$2
    url=$3
    shift 3
    n=0
    while [ $n -lt "$N" ]; do
        code=$(curl -s -H 'Accept:' -o /dev/null -w '%{http_code}' "$@" \
               "$(echo "$url" | sed "s/@/$((n % 5 + 1))/")")
        [ "$code" = "$want" ] ||
            { echo "callgrind.sh: $name got $code" >&2; exit 1; }
        n=$((n + 1))
    done
    echo "$name" >>"$OUT/cases"
    sleep 1
}
if [ $KIND = put ]; then
    run put 200 "$B/lua/docs/cg@" -X PUT -d '{"n":2}'
    run putraw 200 "$B/luaraw/docs/cr@" -X PUT -d '{"n":2}'
elif [ $KIND = get ]; then
    run get 200 "$B/lua/docs/cg@"
    run getraw 200 "$B/luaraw/docs/cr@"
else
    run m304 304 "$B/api/docs/bench" -H "If-None-Match: $TAG"
    run q304 304 "http://127.0.0.1:$QPORT/api/docs/bench" \
        -H "If-None-Match: $QTAG"
    run s304 304 "$B/static/doc.json" -H "If-None-Match: $STAG"
    run floor304 304 "http://127.0.0.1:$FPORT/api/docs/bench" \
        -H "If-None-Match: $QTAG"
fi
kill "$VG"
wait "$VG" 2>/dev/null || true
VG=

ls "$OUT"/cg.out.* | sort -t. -k3 -n | while read -r f; do
    sed -n 's/^summary: //p; s/^totals: //p' "$f" | head -n 1
done >"$OUT/per-request"
echo "instructions per request (median of the last $((N - 5)) of $N):"
c=0
for name in $(cat "$OUT/cases"); do
    first=$((start + c * N + 5))
    last=$((start + (c + 1) * N - 1))
    sed -n "${first},${last}p" "$OUT/per-request" | sort -n |
        awk -v name="$name" '{ v[NR] = $1 } END { printf "%-9s %d\n", name, v[int((NR + 1) / 2)] }'
    c=$((c + 1))
done | tee "$OUT/medians"
if [ $KIND != 304 ]; then
    awk -v k=$KIND '{ v[$1] = $2 }
        END { printf "the module'"'"'s share: %d\n", v[k] - v[k "raw"] }' \
        "$OUT/medians"
fi
