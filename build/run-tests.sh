#!/bin/sh
# Run the Apache::Test suite in t/ against the module built in .libs/.
#
#   sh build/run-tests.sh                     the whole suite
#   sh build/run-tests.sh -verbose t/lock.t   some files, every case shown
#   sh build/run-tests.sh stress              the long lost-update stress run
#   SANITIZE=1 sh build/run-tests.sh          against a `make SANITIZE=1` build:
#                                             httpd runs with libasan preloaded
#                                             and any ASan/UBSan report fails
#
# The server is configured from t/conf/extra.conf.in and loads
# .libs/mod_conditional.so straight from the tree; nothing is installed.
# Apache::Test will not run httpd as root, so as root the tree is copied to a
# temporary directory owned by an unprivileged system user (condtest) and the
# suite runs there as that user; its logs are copied back into t/logs.
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)

if [ "${1:-}" = stress ]; then
    shift
    exec sh build/stress.sh "$@"
fi

APXS=${APXS:-$(command -v apxs || command -v apxs2 || true)}
if [ -z "$APXS" ]; then
    echo "run-tests.sh: apxs not found (sh build/deps.sh)" >&2
    exit 1
fi
if [ ! -f .libs/mod_conditional.so ]; then
    echo "run-tests.sh: .libs/mod_conditional.so is missing (make)" >&2
    exit 1
fi

TEST_USER=${TEST_USER:-condtest}

if [ "$(id -u)" -eq 0 ]; then
    if ! id "$TEST_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$TEST_USER"
    fi
    work=$(mktemp -d /tmp/conditional-test.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    trap 'exit 130' INT TERM
    mkdir "$work/src"
    tar -C "$top" --exclude=./.git --exclude=./t/logs --exclude=./t/data \
        --exclude=./fuzz/corpus --exclude=./fuzz/bin --exclude=./fuzz/out \
        -cf - . | tar -C "$work/src" -xf -
    # A small file system of its own that t/diskfull.t can fill (the test
    # is skipped where it cannot be mounted).
    mkdir -p "$work/src/t/full"
    if mount -t tmpfs -o size=2m,mode=0755 tmpfs "$work/src/t/full" \
            2>/dev/null; then
        trap 'umount "$work/src/t/full" 2>/dev/null; rm -rf "$work"' EXIT
    fi
    chown -R "$TEST_USER" "$work"
    chmod 755 "$work"
    status=0
    runuser -u "$TEST_USER" -- env HOME="$work" APXS="$APXS" \
        SANITIZE="${SANITIZE:-}" \
        sh "$work/src/build/run-tests.sh" "$@" || status=$?
    rm -rf "$top/t/logs"
    cp -R "$work/src/t/logs" "$top/t/logs" 2>/dev/null || true
    chown -R --reference="$top" "$top/t/logs" 2>/dev/null || true
    exit $status
fi

# Generate t/TEST from t/TEST.PL, start a fresh server on a free port, run
# the tests, stop the server. The server is started and stopped apart from
# the test run so the harness summary is the last thing printed.
perl -MApache::TestMM -e 'Apache::TestMM::generate_script("t/TEST")' \
    >/dev/null
perl t/TEST -clean >/dev/null 2>&1 || true
rm -rf t/data t/data-site1 t/data-site2

# A sanitizer build needs its runtime loaded before anything else in httpd:
# every httpd the suite starts (Apache::Test's, build/sandbox.sh's, the
# tests' own) is build/asan-httpd.sh, which preloads it into httpd alone.
# The clients and helpers the tests run must not inherit the preload (see
# asan-httpd.sh: curl and postgres hang under it); conditionalctl is linked
# with the runtime itself. Leak checking is off: httpd frees its pools only
# at exit, if at all. Reports, from httpd and from conditionalctl, go to
# files in t/logs/sanitizer/, checked when the run is over.
sanitize_setup() {
    san_dir="$top/t/logs/sanitizer"
    mkdir -p "$san_dir"
    asan=$(${CC:-cc} -print-file-name=libasan.so)
    if [ ! -e "$asan" ]; then
        echo "run-tests.sh: libasan.so not found (${CC:-cc})" >&2
        exit 1
    fi
    export COND_ASAN_RUNTIME="$asan"
    export COND_REAL_HTTPD="$("$APXS" -q SBINDIR)/$("$APXS" -q TARGET)"
    export HTTPD="$top/build/asan-httpd.sh"
    export ASAN_OPTIONS="detect_leaks=0:log_path=$san_dir/asan:abort_on_error=0"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$san_dir/ubsan"
}

# Any report, in a file of its own or in an error log, fails the run.
# ASan writes to its log_path. UBSan writes to stderr, which in httpd is the
# error log: libubsan's call to set its log_path binds to the preloaded
# libasan's copy of that function, so its own stays unset. Every httpd the
# tests start keeps its error log under t/logs. (The same holds for
# conditionalctl, linked with both: its UBSan reports go to its stderr,
# which the tests read, and it exits non-zero.)
sanitize_check() {
    found=$(find "$san_dir" -type f -size +0 2>/dev/null | head -n 20)
    found="$found $(find t/logs -type f \( -name '*error_log' \
        -o -name 'error.log' \) -exec grep -lE \
        'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:' {} + \
        2>/dev/null | head -n 20)"
    found=$(echo $found)
    if [ -n "$found" ]; then
        echo "run-tests.sh: sanitizer reports:" >&2
        for f in $found; do
            echo "== $f" >&2
            grep -A 30 -E 'ERROR: |runtime error:' "$f" | head -n 60 >&2
        done
        return 1
    fi
    echo "run-tests.sh: no sanitizer reports"
}

if [ "${SANITIZE:-}" = 1 ]; then
    sanitize_setup
fi

# A core file in the tree (ulimit -c is raised below; an httpd run with
# -X, the tests' own among them, dumps into its working directory) is
# named with the program and the backtrace of each thread. As root the
# tree is a copy that is removed at the end, so this is the only trace of
# it. Said, not counted: a crash of the module's httpd shows as failed
# tests or, under SANITIZE=1, as a report; this tells whose it was.
report_cores() {
    find . -maxdepth 3 -type f \( -name core -o -name 'core.[0-9]*' \) \
        2>/dev/null | while read -r core; do
        exe=$(gdb -batch -c "$core" 2>/dev/null |
              sed -n "s/^Core was generated by \`\([^ ']*\).*/\1/p")
        echo "run-tests.sh: core file $core, from ${exe:-an unknown program}:" >&2
        case "$exe" in
            ''|/*) ;;
            *) exe=$(command -v "$exe" || true) ;;
        esac
        if [ -n "$exe" ] && [ -x "$exe" ]; then
            timeout 60 gdb -batch -ex 'thread apply all bt 15' "$exe" \
                "$core" 2>/dev/null | grep -E '^(#|Thread|Program)' \
                | head -n 80 >&2 || true
        fi
    done
}

# By its pid file: `t/TEST -stop-httpd` would look at the default port
# rather than the one -port select chose.
stop_server() {
    pid=$(cat t/logs/httpd.pid 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "run-tests.sh: httpd $pid did not stop" >&2
        return 1
    fi
}

ulimit -c unlimited 2>/dev/null || true
export APACHE_TEST_ULIMIT_SET=1
if [ "${SANITIZE:-}" = 1 ]; then
    start() { perl t/TEST -apxs "$APXS" -httpd "$HTTPD" "$@"; }
else
    start() { perl t/TEST -apxs "$APXS" "$@"; }
fi
# Apache::Test may give up on a server that did start (its children
# failing every request): stopped all the same.
trap stop_server EXIT
if ! start -port select -start-httpd; then
    echo "run-tests.sh: httpd did not start; t/logs/error_log says:" >&2
    tail -n 30 t/logs/error_log >&2 2>/dev/null || true
    if [ "${SANITIZE:-}" = 1 ]; then
        sanitize_check || true
    fi
    exit 1
fi
trap 'exit 130' INT TERM

# A failed run ends with a note after the harness summary, which is dropped
# so the summary stays last.
export HARNESS_TIMER=${HARNESS_TIMER:-1}
{ status=0; perl t/TEST -run-tests "$@" 2>&1 || status=$?
  echo "$status" >t/logs/run-tests.status; } |
    grep --line-buffered -v '^\[  error\] error running tests'
status=$(cat t/logs/run-tests.status 2>/dev/null || echo 1)
stop_server
trap - EXIT
if [ "${SANITIZE:-}" = 1 ] && ! sanitize_check; then
    status=1
fi
report_cores
exit "$status"
