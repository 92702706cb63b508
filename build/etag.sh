# etag.sh - sourced by the build scripts (demo, bench, stress).
# etag_header: read response headers (curl -D -) on stdin, print the
# ETag's value, surrounding blanks and the CR removed.
etag_header() {
    sed -n 's/^[Ee][Tt][Aa][Gg]: *\(.*[^[:space:]]\)[[:space:]]*$/\1/p'
}
