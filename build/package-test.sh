#!/bin/sh
# package-test.sh - the Debian package, end to end, as an administrator
# would use it (CI runs it after `make test`; as root):
#
#   1. build libapache2-mod-conditional with dpkg-buildpackage (build/deb.sh)
#      and check it with lintian (no errors);
#   2. `apt-get install ./...deb`: the module, conditional.load/.conf as
#      conffiles, conditionalctl and its manual page, the store directory
#      owned by www-data, the module enabled by the maintainer scripts;
#   3. `a2enmod conditional`, `apache2ctl configtest`, start Debian's apache2
#      (/etc/apache2, port 80) with a <Location> switched On in front of the
#      legacy CGI (t/cgi-bin/docs.cgi); curl gets a 304 and a 412 without the
#      CGI running;
#   4. stop that apache2, `apt-get remove` (module disabled, conffiles kept),
#      `apt-get purge` (nothing of the package left);
#   5. check that /etc/apache2 and /var/lib/apache2 are as they were
#      before, and that apt installed nothing but the package.
#
# The test site is a temporary conf-available/conditional-pkgtest.conf; it is
# disabled and removed again whatever happens. An apache2 that was already
# running is left running (the test reloads it instead of starting one).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKG=libapache2-mod-conditional
SITE=conditional-pkgtest
PORT=80
APT="apt-get -o DPkg::Lock::Timeout=600 -y -q"
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
    echo "package-test.sh: run as root (it installs and purges $PKG)" >&2
    exit 2
fi

failures=0
step() { echo "== $*"; }
ok() { echo "ok   $*"; }
not_ok() { echo "FAIL $*"; failures=$((failures + 1)); }
check() {
    what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
die() {
    echo "package-test.sh: $*" >&2
    exit 1
}

apache_pid() {
    pid=$(cat /var/run/apache2/apache2.pid 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
    fi
}

# Everything an installed package or the test could leave behind in
# Apache's own directories: path, type, mode, owner, link target, checksum.
snapshot() {
    find /etc/apache2 /var/lib/apache2 -printf '%p %y %m %u:%g %l\n' | sort
    find /etc/apache2 /var/lib/apache2 -type f -exec md5sum {} + | sort
}

# a2enconf/a2dismod keep their state in marker files under
# /var/lib/apache2/{conf,module}/*_by_{admin,maint}/; purging removes the
# markers but not the directories they were made in. Empty ones that were
# not there before are removed again.
tidy_state_dirs() {
    for d in /var/lib/apache2/conf/* /var/lib/apache2/module/*; do
        if [ -d "$d" ] && ! grep -q "^$d d " "$work/before"; then
            rmdir "$d" 2>/dev/null || true
        fi
    done
}

if dpkg-query -W -f '${Status}' "$PKG" 2>/dev/null | grep -q installed; then
    die "$PKG is installed already; purge it first ($APT purge $PKG)"
fi
for f in /usr/lib/apache2/modules/mod_conditional.so \
         /etc/apache2/mods-available/conditional.load \
         /etc/apache2/mods-available/conditional.conf \
         /var/lib/apache2/conditional; do
    [ ! -e "$f" ] || die "$f exists (a \`make install\` copy?); remove it first"
done

work=$(mktemp -d /tmp/conditional-pkgtest.XXXXXX)
chmod 755 "$work"
was_running=$(apache_pid)
started=
snapshot >"$work/before"

cleanup() {
    set +e
    if [ -n "$started" ] && [ -n "$(apache_pid)" ]; then
        apache2ctl stop >/dev/null 2>&1
        wait_stopped
    fi
    if [ -e "/etc/apache2/conf-enabled/$SITE.conf" ]; then
        a2disconf -q -p "$SITE" >/dev/null
    fi
    rm -f "/etc/apache2/conf-available/$SITE.conf"
    if dpkg-query -W -f '${Status}' "$PKG" 2>/dev/null | grep -q 'ok'; then
        $APT purge "$PKG" >/dev/null 2>&1
    fi
    tidy_state_dirs
    if [ -n "$was_running" ]; then
        apache2ctl graceful >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_stopped() {
    i=0
    while [ -n "$(apache_pid)" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -z "$(apache_pid)" ]
}

wait_ready() {
    i=0
    while [ $i -lt 100 ]; do
        if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# ---------------------------------------------------------------------------
step "build and lintian"
OUT="$work/dist" sh "$ROOT/build/deb.sh" >"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log" >&2; die "the package did not build"; }
deb=$(ls "$work"/dist/${PKG}_*.deb)
ok "dpkg-buildpackage built $(basename "$deb")"
if lintian --fail-on error "$deb" >"$work/lintian.log" 2>&1; then
    ok "lintian: no errors"
else
    not_ok "lintian: errors"
    cat "$work/lintian.log"
fi

# ---------------------------------------------------------------------------
step "install"
$APT install "$deb" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; die "apt-get install $deb failed"; }
ok "apt-get install ./$(basename "$deb")"
new=$(sed -n '/^The following NEW packages will be installed:/,/^[^ ]/p' \
      "$work/install.log" | sed '1d;$d' | xargs)
check "apt-get installed $PKG and nothing else (${new:-?})" test "$new" = "$PKG"
dpkg -L "$PKG" >"$work/files"

check "module in /usr/lib/apache2/modules" \
    test -f /usr/lib/apache2/modules/mod_conditional.so
# CI builds the tree with SANITIZE=1 before this; the package is built
# from a clean copy and must not need a sanitizer runtime.
check "module and conditionalctl need no sanitizer runtime" \
    sh -c '! readelf -d /usr/lib/apache2/modules/mod_conditional.so \
        /usr/sbin/conditionalctl | grep -q -E "lib(a|ub)san"'
conffiles=$(dpkg-query -W -f '${Conffiles}' "$PKG")
for f in conditional.load conditional.conf; do
    check "mods-available/$f is a conffile" \
        sh -c "echo '$conffiles' | grep -q ' /etc/apache2/mods-available/$f '"
done
check "module enabled on install (apache2-maintscript-helper)" \
    test -L /etc/apache2/mods-enabled/conditional.load
for script in postinst prerm postrm; do
    check "$script enables/disables through apache2-maintscript-helper" \
        grep -Eq 'apache2_invoke (en|dis)mod' \
        "/var/lib/dpkg/info/$PKG.$script"
done
check "conditionalctl in /usr/sbin" test -x /usr/sbin/conditionalctl
man8=/usr/share/man/man8/conditionalctl.8.gz
check "manual page conditionalctl(8) in the package" \
    sh -c "dpkg-deb -c '$deb' | grep -q ' \\.$man8\$'"
# Slim Debian images tell dpkg not to install manual pages at all.
if grep -qs '^path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
    echo "skip manual page installed: dpkg excludes /usr/share/man here"
else
    check "manual page conditionalctl(8) installed" test -f "$man8"
fi
check "/var/lib/apache2/conditional owned by www-data" \
    test "$(stat -c %U:%G /var/lib/apache2/conditional)" = www-data:www-data

# ---------------------------------------------------------------------------
step "Debian's apache2 with a <Location> switched On in front of a CGI"
a2enmod conditional >"$work/a2enmod.log" 2>&1 ||
    { cat "$work/a2enmod.log" >&2; die "a2enmod conditional failed"; }
ok "a2enmod conditional"

mkdir -p "$work/cgi-bin" "$work/data"
cp "$ROOT/t/cgi-bin/docs.cgi" "$work/cgi-bin/docs.cgi"
chmod 755 "$work/cgi-bin" "$work/cgi-bin/docs.cgi"
chown www-data:www-data "$work/data"
cat >"/etc/apache2/conf-available/$SITE.conf" <<EOF
# Temporary: written and removed by mod_conditional's build/package-test.sh.
<IfModule !mod_cgid.c>
    <IfModule mpm_prefork_module>
        LoadModule cgi_module /usr/lib/apache2/modules/mod_cgi.so
    </IfModule>
    <IfModule !mpm_prefork_module>
        LoadModule cgid_module /usr/lib/apache2/modules/mod_cgid.so
    </IfModule>
</IfModule>
SetEnv DOCS_DATA "$work/data"
ScriptAlias /$SITE/ "$work/cgi-bin/docs.cgi/"
<Directory "$work/cgi-bin">
    Options +ExecCGI
    Require all granted
</Directory>
<Location /$SITE/>
    Conditional On
</Location>
EOF
a2enconf -q "$SITE" >/dev/null
if apache2ctl configtest >"$work/configtest.log" 2>&1; then
    ok "apache2ctl configtest"
else
    cat "$work/configtest.log" >&2
    die "apache2ctl configtest failed"
fi

if [ -n "$was_running" ]; then
    apache2ctl graceful >/dev/null
    sleep 1
else
    apache2ctl start >"$work/start.log" 2>&1 ||
        { cat "$work/start.log" >&2; die "apache2ctl start failed"; }
    started=1
fi
wait_ready || die "apache2 does not answer on port $PORT"
ok "apache2 answers on port $PORT"

url=http://127.0.0.1:$PORT/$SITE/docs/hello
count() { cat "$work/data/counters/hello.count" 2>/dev/null || echo 0; }
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
etag() { curl -s -D - -o /dev/null "$@" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p'; }

check "PUT creates the document (201)" test "$(status -X PUT \
    -H 'Content-Type: application/json' -d '{"greeting":"hello"}' "$url")" = 201
tag=$(etag "$url")
check "GET is tagged by the module ($tag)" \
    sh -c "echo '$tag' | grep -Eq '^\"[0-9a-f]{16}-[0-9a-f]+(-[0-9a-f]{16})?\"$'"
n=$(count)
check "If-None-Match with that tag: 304" \
    test "$(status -H "If-None-Match: $tag" "$url")" = 304
check "... and the CGI did not run" test "$(count)" = "$n"
check "PUT If-Match with that tag: 200" test "$(status -X PUT \
    -H "If-Match: $tag" -H 'Content-Type: application/json' \
    -d '{"greeting":"hi"}' "$url")" = 200
n=$(count)
check "PUT If-Match with the same, now stale, tag: 412" test "$(status -X PUT \
    -H "If-Match: $tag" -H 'Content-Type: application/json' \
    -d '{"greeting":"lost?"}' "$url")" = 412
check "... and the CGI did not run" test "$(count)" = "$n"
check "... the document keeps the first write" \
    grep -q '"greeting":"hi"' "$work/data/docs/hello.json"
check "store /var/lib/apache2/conditional/conditional.db owned by www-data" \
    test "$(stat -c %U /var/lib/apache2/conditional/conditional.db)" = www-data
# conditionalctl shows the version's tag; curl's representation (it sends
# Accept: */*, which the CGI's Vary names) adds its own hash to it.
tag=$(etag "$url" | sed -E 's/-[0-9a-f]{16}"$/"/')
key=$(conditionalctl list | awk -v k="/$SITE/docs/hello" \
      'substr($1, length($1) - length(k) + 1) == k { print $1 }')
check "conditionalctl lists the key ($key) and shows its ETag" \
    sh -c "conditionalctl show '$key' | grep -q '^etag *$tag'"

if [ -n "$started" ]; then
    apache2ctl stop >/dev/null 2>&1 || true
    check "apache2 stopped" wait_stopped
    started=
fi
a2disconf -q -p "$SITE" >/dev/null
rm -f "/etc/apache2/conf-available/$SITE.conf"

# ---------------------------------------------------------------------------
step "remove and purge"
$APT remove "$PKG" >"$work/remove.log" 2>&1 ||
    { cat "$work/remove.log" >&2; die "apt-get remove failed"; }
check "remove: module disabled" test ! -e /etc/apache2/mods-enabled/conditional.load
check "remove: module file gone" test ! -e /usr/lib/apache2/modules/mod_conditional.so
check "remove: conffiles kept" test -f /etc/apache2/mods-available/conditional.load

$APT purge "$PKG" >"$work/purge.log" 2>&1 ||
    { cat "$work/purge.log" >&2; die "apt-get purge failed"; }
check "purge: package unknown to dpkg" \
    sh -c "! dpkg-query -W -f '\${Status}' $PKG 2>/dev/null | grep -q ok"
left=$(find /etc/apache2 /var/lib/apache2 /usr/lib/apache2 /usr/sbin \
       /usr/share/man /usr/share/doc /var/lib/dpkg/info \
       -name '*conditional*' 2>/dev/null || true)
while read -r f; do
    if [ -e "$f" ] && [ ! -d "$f" ]; then left="$left $f"; fi
done <"$work/files"
check "purge: none of its files, no *conditional* in Apache's directories" \
    test -z "$left"
[ -z "$left" ] || echo "left: $left"

tidy_state_dirs
snapshot >"$work/after"
if cmp -s "$work/before" "$work/after"; then
    ok "/etc/apache2 and /var/lib/apache2 as before"
else
    not_ok "the machine changed:"
    diff "$work/before" "$work/after" || true
fi

echo
if [ "$failures" -ne 0 ]; then
    echo "package-test.sh: $failures check(s) failed"
    exit 1
fi
echo "package-test.sh: all checks passed"
