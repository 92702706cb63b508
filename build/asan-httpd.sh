#!/bin/sh
# asan-httpd.sh - httpd for a `make SANITIZE=1` module: Debian's apache2
# with the ASan runtime loaded before anything else, which a module built
# with ASan needs. build/run-tests.sh points the suite at this script
# (Apache::Test's -httpd, sandbox.sh's HTTPD) under SANITIZE=1:
#
#   COND_ASAN_RUNTIME   libasan.so (`cc -print-file-name=libasan.so`)
#   COND_REAL_HTTPD     the httpd to run (/usr/sbin/apache2)
#
# Only httpd gets the preload, never the clients and helpers a test starts
# (curl, PostgreSQL, Chromium, ...). A preloaded libasan is initialised
# lazily, on the first call it intercepts; in a program whose libraries
# call newlocale() from a constructor (libp11-kit, which curl and postgres
# load through GnuTLS), that first call is a malloc() inside newlocale()
# with glibc's locale lock held for writing. ASan's start-up calls
# dlerror(), which takes the same lock for reading; the unlock that follows
# releases the writer's hold, newlocale()'s own unlock then drives the
# lock's reader count below zero, and the program's next setlocale() waits
# on it for ever (curl --version hangs under LD_PRELOAD=libasan.so).
set -eu
: "${COND_ASAN_RUNTIME:?asan-httpd.sh: COND_ASAN_RUNTIME is not set}"
LD_PRELOAD="$COND_ASAN_RUNTIME${LD_PRELOAD:+:$LD_PRELOAD}"
export LD_PRELOAD
exec "${COND_REAL_HTTPD:-/usr/sbin/apache2}" "$@"
