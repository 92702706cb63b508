#!/bin/sh
# docblock.sh NAME DOC BLOCK: replace what stands between the lines
# "<!-- NAME:begin -->" and "<!-- NAME:end -->" of the Markdown file DOC with
# the contents of the file BLOCK (bench.sh and stress.sh keep their last
# results in docs/benchmarks.md this way). Leaves DOC alone, with a note,
# when either marker is missing.
set -eu
name=$1
doc=$2
block=$3
if ! grep -q "^<!-- $name:begin -->" "$doc" \
    || ! grep -q "^<!-- $name:end -->" "$doc"; then
    echo "docblock.sh: no $name markers in $doc; left alone" >&2
    exit 0
fi
tmp=$(mktemp)
awk -v block="$block" -v begin="<!-- $name:begin -->" -v end="<!-- $name:end -->" '
    index($0, begin) == 1 {
        print
        while ((getline line < block) > 0) print line
        skip = 1
        next
    }
    index($0, end) == 1 { skip = 0 }
    !skip
' "$doc" >"$tmp"
cat "$tmp" >"$doc"
rm -f "$tmp"
echo "docblock.sh: updated $doc" >&2
