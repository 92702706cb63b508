#!/bin/sh
# Install what building and testing mod_conditional needs on Debian 12.
# Idempotent: does nothing when everything is present. As root it installs
# what is missing; otherwise it names the missing packages and fails.
#
#   apache2, apache2-dev   httpd 2.4 and apxs (module build, test server)
#   apache2-utils          htpasswd (auth test fixtures)
#   libsqlite3-dev sqlite3 the default version store and its shell
#   libapache2-mod-perl2   Apache::Test (t/TEST); mod_perl itself stays unused
#   libwww-perl            LWP, the client behind Apache::TestRequest
#   curl, wrk              demo and benchmark
#   postgresql, libaprutil1-dbd-pgsql
#                          ConditionalStore dbd: the tests start their own
#                          PostgreSQL; apr_dbd's driver for mod_dbd
#   dpkg-dev, debhelper,   the Debian package (make deb, build/deb.sh; dh_apache2
#   lintian                comes with apache2-dev) and its check in CI
#                          (build/package-test.sh)
#   php-fpm                the PHP backend behind mod_proxy_fcgi (t/fpm.t starts
#                          its own php-fpm as the test user)
#   chromium               headless browser: loads the demo's landing page and
#                          takes a screenshot of it (t/landing.t); fetches two
#                          representations through its own cache (t/chromium.t)
#   varnish                a real cache in front of the module (t/varnish.t;
#                          t/cachedisk.t uses httpd's own mod_cache_disk)
#   faketime               a cluster node whose clock is ahead (t/cluster.t)
#   gdb                    the backtrace of a core file a test run leaves
#                          (build/run-tests.sh, report_cores)
#   clang, libclang-rt-14-dev, llvm
#                          make fuzz: libFuzzer targets, their coverage
#                          (make test SANITIZE=1 uses gcc's libasan, which
#                          comes with gcc)
# JSON::PP, used by the test CGI and the tests, ships with perl itself.
set -eu

PACKAGES="gcc libc6-dev make perl apache2 apache2-dev apache2-utils libsqlite3-dev \
sqlite3 libapache2-mod-perl2 libwww-perl curl wrk \
postgresql libaprutil1-dbd-pgsql dpkg-dev debhelper lintian \
php-fpm chromium varnish clang libclang-rt-14-dev llvm faketime gdb"

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $pkg" ;;
    esac
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages:$missing" >&2
    echo "deps.sh: run as root, or: apt-get install$missing" >&2
    exit 1
fi

echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
