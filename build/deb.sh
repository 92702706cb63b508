#!/bin/sh
# deb.sh - `make deb`: build the Debian package libapache2-mod-conditional
# with `dpkg-buildpackage -us -uc -b` (debian/) and put the .deb in dist/.
#
# The build runs in a copy of the tree, because dpkg-buildpackage writes its
# results into the parent directory and leaves debian/ build state behind.
# `dpkg-buildpackage -us -uc -b` in the tree itself works as well.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/dist}

for tool in dpkg-buildpackage dh dh_apache2; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "deb.sh: $tool is missing (sh build/deps.sh)" >&2
        exit 1
    fi
done

version=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)
work=$(mktemp -d /tmp/conditional-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
src=$work/libapache2-mod-conditional-$version
mkdir "$src"
tar -C "$ROOT" --exclude=./.git --exclude=./dist --exclude=./t/logs \
    --exclude=./t/data --exclude=./.libs -cf - . | tar -C "$src" -xf -

(cd "$src" && make clean >/dev/null && dpkg-buildpackage -us -uc -b)

mkdir -p "$OUT"
for f in "$work"/*.deb; do
    cp "$f" "$OUT/"
    echo "deb.sh: $OUT/$(basename "$f")"
done
