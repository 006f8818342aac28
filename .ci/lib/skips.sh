# Shared by .ci/run and the guest steps: every skip a test records (host/rig/tests/common's
# `skip`, one line per skip in the file $GAUGE_SKIP_LEDGER names) is checked against the skips
# the CI step expects (.ci/skips/STEP: one binary::test per line, # starts a comment). A skip
# the step does not expect fails the step, so CI proves every path it claims to run.
# Sourced with $repo set.

# skips_begin: a fresh, empty ledger for the step about to run (exported).
skips_begin() {
    mkdir -p "$repo/target/skips"
    GAUGE_SKIP_LEDGER=$(mktemp "$repo/target/skips/ledger.XXXXXX")
    export GAUGE_SKIP_LEDGER
}

# skips_check STEP: compares the ledger with .ci/skips/STEP; prints what was skipped and why;
# returns 1 on a skip that is not expected.
skips_check() {
    local step=$1 expected=$repo/.ci/skips/$1 ledger=$GAUGE_SKIP_LEDGER status=0
    unset GAUGE_SKIP_LEDGER
    if [[ ! -f $expected ]]; then
        echo "skips: $expected is missing: list the skips step $step expects (none: an empty file)" >&2
        return 1
    fi
    local unexpected
    unexpected=$(awk -F'\t' 'NR == FNR { sub(/#.*/, ""); gsub(/[ \t]+/, ""); if ($0 != "") want[$0] = 1; next }
        !($1 in want) { print "  " $1 ": " $2 }' "$expected" "$ledger")
    local n
    n=$(wc -l <"$ledger")
    echo "-- skips in $step: $n (expected: $(grep -cvE '^[[:space:]]*(#|$)' "$expected" || true) kind(s), .ci/skips/$step)"
    awk -F'\t' '{ print "   skipped " $1 ": " $2 }' "$ledger" | sort -u
    if [[ -n $unexpected ]]; then
        echo "skips: step $step skipped what it must run:" >&2
        echo "$unexpected" | sort -u >&2
        status=1
    fi
    rm -f "$ledger"
    return "$status"
}
