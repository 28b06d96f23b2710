#!/usr/bin/env bash
# Fuzz Hotline's parsers and proxy core with libFuzzer (cargo-fuzz), each target for a bounded time.
#
#   bash tests/fuzz.sh                 # every target, 60 s each
#   bash tests/fuzz.sh -t 600 proxy    # one target, 10 minutes
#   bash tests/fuzz.sh --replay        # stable-only: seeds + saved corpus + random mutations
#                                      # (what tests/run.sh does in CI; FUZZ_REPLAY_SECS per target)
#
# Targets: frame_parse stream_split rewrite proxy (crates/sip/fuzz), config_compile
# (crates/config/fuzz). Seeds are written into <crate>/fuzz/corpus/<target>/ first; the corpus
# grows there between runs (git-ignored). A crash is saved in <crate>/fuzz/artifacts/<target>/
# and this script exits 1; replay it with `cargo test --release` in that fuzz crate (the replay
# test runs every file under artifacts/) or `cargo fuzz run <target> <file>`.
#
# Toolchain: cargo-fuzz needs nightly flags. A nightly toolchain is used when installed;
# otherwise the stable one with RUSTC_BOOTSTRAP=1 (works with the sanitizer `none` and
# `address` here). cargo-fuzz itself is installed from crates.io when missing.
# Environment: FUZZ_SANITIZER (default address), FUZZ_JOBS (parallel jobs per target, default 1).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

secs=60
replay=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t|--time) secs="$2"; shift 2 ;;
        --replay) replay=1; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -eq 0 ] && targets=(frame_parse stream_split rewrite proxy config_compile)

log() { printf '==> %s\n' "$*" >&2; }

crate_of() {
    case "$1" in
        config_compile) echo crates/config/fuzz ;;
        frame_parse|stream_split|rewrite|proxy) echo crates/sip/fuzz ;;
        *) log "unknown target $1"; exit 2 ;;
    esac
}

if [ "$replay" -eq 1 ]; then
    export FUZZ_REPLAY_SECS="${FUZZ_REPLAY_SECS:-3}"
    for c in crates/sip/fuzz crates/config/fuzz; do
        log "replay fuzzing $c (${FUZZ_REPLAY_SECS}s of random mutations per target)"
        out="$root/$c/target/replay.log"
        mkdir -p "$(dirname "$out")"
        if ! cargo test --release --manifest-path "$c/Cargo.toml" -- --nocapture >"$out" 2>&1; then
            tail -n 60 "$out" >&2
            log "replay failed in $c (full log $out)"
            exit 1
        fi
        grep -E 'random execs|test result' "$out" >&2 || true
    done
    exit 0
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
    log "toolchain: nightly"
else
    toolchain=(+stable)
    export RUSTC_BOOTSTRAP=1
    log "toolchain: stable with RUSTC_BOOTSTRAP=1"
fi
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"

declare -A seeded=()
status=0
summary=()
for t in "${targets[@]}"; do
    c=$(crate_of "$t")
    cd "$root/$c"
    if [ -z "${seeded[$c]:-}" ]; then
        cargo run --quiet --release --example write_seeds -- corpus >&2
        seeded[$c]=1
    fi
    log "fuzzing $t for ${secs}s (sanitizer $sanitizer)"
    out="$root/$c/target/fuzz-$t.log"
    mkdir -p "$(dirname "$out")"
    set +e
    cargo "${toolchain[@]}" fuzz run -O -s "$sanitizer" -j "$jobs" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=16384 -timeout=10 \
        -print_final_stats=1 >"$out" 2>&1
    rc=$?
    set -e
    runs=$(grep -Eo 'Done [0-9]+ runs' "$out" | awk '{s+=$2} END {print s+0}')
    cov=$(grep -Eo 'cov: [0-9]+' "$out" | tail -n1 | awk '{print $2}')
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ "$rc" -ne 0 ]; then
        status=1
        summary+=("$t: FAILED (exit $rc) after $runs runs; log $out; artifacts in $c/artifacts/$t")
        tail -n 40 "$out" >&2
    else
        summary+=("$t: ok, $runs runs in ${secs}s, coverage ${cov:-?} edges, corpus $corpus files")
    fi
done

log "summary"
printf '  %s\n' "${summary[@]}"
exit "$status"
