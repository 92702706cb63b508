#!/bin/sh
# demo.sh - `make run` / `make stop`: httpd with mod_conditional in front of
# the legacy CGI document API (t/cgi-bin/docs.cgi) on http://localhost:8080/,
# whose / is a page saying what the demo is (build/demo-index.html).
#
#   sh build/demo.sh start     start (build/sandbox.sh), seed, print curl lines
#   sh build/demo.sh stop      stop it
#
# As root the versions live in the module's default store,
# /var/lib/apache2/conditional/conditional.db, and httpd's children run as
# www-data. The server files (config, logs, documents) are in DEMO_DIR
# (/tmp/mod_conditional-demo). Only 127.0.0.1 is listened on.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/build/etag.sh"
PORT=${PORT:-8080}
if [ "$(id -u)" = 0 ]; then
    DEMO_DIR=${DEMO_DIR:-/tmp/mod_conditional-demo}
    STORE=${STORE:-/var/lib/apache2/conditional/conditional.db}
else
    DEMO_DIR=${DEMO_DIR:-/tmp/mod_conditional-demo-$(id -u)}
    STORE=${STORE:-$DEMO_DIR/store/conditional.db}
fi
URL=http://localhost:$PORT
DOC=$URL/api/docs/hello

case ${1:-} in
    start)
        if [ ! -f "$ROOT/.libs/mod_conditional.so" ]; then
            echo "demo.sh: .libs/mod_conditional.so is missing (make)" >&2
            exit 1
        fi
        MPM=${MPM:-event} PORT=$PORT STORE=$STORE MODULE=1 REQUIRE=1 \
            STATUS=1 INDEX=1 sh "$ROOT/build/sandbox.sh" start "$DEMO_DIR"
        # Seed the document through the module: create-only, so a second
        # `make run` leaves the existing one alone.
        curl -s -o /dev/null -X PUT -H 'If-None-Match: *' \
            -H 'Content-Type: application/json' \
            -d '{"greeting":"hello, world"}' "http://127.0.0.1:$PORT/api/docs/hello"
        etag=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/api/docs/hello" | etag_header)
        if [ -z "$etag" ]; then
            echo "demo.sh: the seeded document came back without an ETag;" \
                 "see $DEMO_DIR/logs/error.log" >&2
            exit 1
        fi
        # The landing page, with the seeded document's tag in its curl lines.
        sed -e "s|@URL@|$URL|g" -e "s|@ETAG@|$etag|g" \
            -e "s|@STORE@|$STORE|g" -e "s|@LOGS@|$DEMO_DIR/logs|g" \
            "$ROOT/build/demo-index.html" >"$DEMO_DIR/htdocs/index.html"
        cat <<EOT
mod_conditional demo on $URL/  (open it in a browser; stop it with: make stop)
  /api/            the legacy CGI document API behind mod_conditional
                   (Conditional On, ConditionalRequire On)
  /raw/            the same CGI without the module
  /server-status   httpd's status with the module's counters (local only)
Store:   $STORE
Logs:    $DEMO_DIR/logs/  (access.log shows the module's decision per request)

Try:
  # 200 with a strong ETag
  curl -i $DOC
  # 304 Not Modified; the CGI does not run
  curl -i -H 'If-None-Match: $etag' $DOC
  # 200 with a new ETag: the write was checked and committed atomically
  curl -i -X PUT -H 'If-Match: $etag' -H 'Content-Type: application/json' -d '{"greeting":"hi"}' $DOC
  # 412 Precondition Failed: the same ETag is stale now; the CGI does not run
  curl -i -X PUT -H 'If-Match: $etag' -H 'Content-Type: application/json' -d '{"greeting":"lost?"}' $DOC
  # 428 Precondition Required: a write without If-Match
  curl -i -X PUT -H 'Content-Type: application/json' -d '{"greeting":"blind"}' $DOC
EOT
        ;;
    stop)
        if [ -f "$DEMO_DIR/sandbox.env" ]; then
            sh "$ROOT/build/sandbox.sh" stop "$DEMO_DIR"
            echo "demo stopped"
        else
            echo "demo.sh: no demo in $DEMO_DIR" >&2
        fi
        ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
