#!/bin/sh
# fuzz.sh - build and run the libFuzzer targets in fuzz/ (clang).
#
#   sh build/fuzz.sh              build, then run each target briefly
#                                 (FUZZ_SECONDS each, default 10): CI
#   FUZZ_TARGETS="date lists"     only these targets
#   sh build/fuzz.sh long [RUNS]  RUNS executions per target (default 10M),
#                                 at the lowest priority, then a line
#                                 coverage report of each target's corpus;
#                                 results in fuzz/out/ for docs/fuzzing.md
#
# Each target is built with ASan and UBSan (any report stops it), and
# checks invariants of its own on every input (fuzz/*.c say which). The
# corpus grows in fuzz/corpus/NAME (not in git), seeded from fuzz/seeds/.
# A failure leaves the input in fuzz/out/ and makes this script fail.
set -eu

cd "$(dirname "$0")/.."
CLANG=${CLANG:-clang}
MODE=${1:-short}
RUNS=${2:-10000000}
SECONDS_EACH=${FUZZ_SECONDS:-10}
APR_CFLAGS=$(apr-1-config --cflags --cppflags --includes)
APR_LIBS="$(apr-1-config --link-ld --libs) $(apu-1-config --link-ld --libs)"
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

# name: the sources it needs besides fuzz/fuzz_NAME.c
TARGETS="date:precond.c lists:precond.c evaluate:precond.c key:key.c
meta:variant.c,precond.c"

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "fuzz.sh: $CLANG not found (sh build/deps.sh)" >&2
    exit 1
fi
mkdir -p fuzz/bin fuzz/out

build() {   # build NAME SOURCES EXTRA-FLAGS OUTPUT
    # shellcheck disable=SC2086
    "$CLANG" -g -O1 -Wall -Wextra -Werror $3 $APR_CFLAGS -I. -Ifuzz -o "$4" "fuzz/fuzz_$1.c" $2 \
        $APR_LIBS
}

status=0
for t in $TARGETS; do
    name=${t%%:*}
    srcs=$(echo "${t#*:}" | tr , ' ')
    [ -f "fuzz/fuzz_$name.c" ] || continue
    missing=""
    for src in $srcs; do
        [ -f "$src" ] || missing="$missing $src"
    done
    if [ -n "$missing" ]; then
        echo "fuzz.sh: $name skipped: no$missing in this tree"
        continue
    fi
    case " ${FUZZ_TARGETS:-$name} " in
        *" $name "*) ;;
        *) continue ;;
    esac
    build "$name" "$srcs" "$SAN" "fuzz/bin/$name"
    mkdir -p "fuzz/corpus/$name"
    if [ "$MODE" = long ]; then
        limit="-runs=$RUNS"
        nice="nice -n 19"
    else
        limit="-max_total_time=$SECONDS_EACH"
        nice=""
    fi
    echo "fuzz.sh: $name ($limit)"
    # shellcheck disable=SC2086
    if ! $nice "fuzz/bin/$name" $limit -print_final_stats=1 \
            -artifact_prefix="fuzz/out/$name-" "fuzz/corpus/$name" \
            "fuzz/seeds/$name" >"fuzz/out/$name.log" 2>&1; then
        echo "fuzz.sh: $name FAILED; fuzz/out/$name.log:" >&2
        tail -n 40 "fuzz/out/$name.log" >&2
        status=1
        continue
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' \
        "fuzz/out/$name.log" | sed "s/^/  $name /"
    if [ "$MODE" = long ]; then
        # Line coverage of what the corpus reaches, from a build with
        # clang's source-based coverage (the corpus run once, no fuzzing).
        build "$name" "$srcs" "-fsanitize=fuzzer -fprofile-instr-generate \
            -fcoverage-mapping" "fuzz/bin/$name-cov"
        LLVM_PROFILE_FILE="fuzz/out/$name.profraw" "fuzz/bin/$name-cov" \
            -runs=0 "fuzz/corpus/$name" >/dev/null 2>&1
        llvm-profdata merge -sparse "fuzz/out/$name.profraw" \
            -o "fuzz/out/$name.profdata"
        # shellcheck disable=SC2086
        llvm-cov report "fuzz/bin/$name-cov" \
            -instr-profile="fuzz/out/$name.profdata" $srcs \
            >"fuzz/out/$name.coverage"
        sed "s/^/  $name /" "fuzz/out/$name.coverage"
    fi
done
exit $status
