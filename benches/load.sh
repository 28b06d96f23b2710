#!/usr/bin/env bash
# Load test Hotline on loopback with hotline-load: max CPS (step ramp), CPU µs per call at a
# fixed rate, added setup latency, memory per concurrent call. Everything it starts is killed
# on exit. Every run is bounded: the ramp stops at --budget seconds.
#
#   benches/load.sh                          # cpu + ramp + latency for the basic scenario (≤ ~5 min)
#   benches/load.sh --mode cpu --scenario hunt486 --cpu-rate 2000 --cpu-secs 20
#   benches/load.sh --mode ramp --start 2000 --step 1000 --max 20000 --step-secs 10
#   benches/load.sh --mode sustain --rate 10000 --secs 60
#   benches/load.sh --mode concurrent --concurrent 100000 --rate 2000
#   benches/load.sh --tcp ...                # callers and targets over TCP
#   benches/load.sh --workers 1 ...          # Hotline shards (default: one per core)
#   benches/load.sh --coalesce 200 ...       # server.coalesce_us (wake-up coalescing window)
#   benches/load.sh --hotline-bin OTHER/hotline ...   # measure another build (A/B comparisons)
#   benches/load.sh --driver sipp --mode cpu --warmup 35 ...   # measure after 35 s at the rate
#   benches/load.sh --mode latency --rate 7000 --warmup 35       # latency after 35 s at the rate
#   benches/load.sh --driver sipp --mode cpu --scenario hunt486   # SIPp as caller and targets
#                                            # (issue 8's Kamailio method; modes cpu and sustain;
#                                            # PERF="stat -e ..." runs perf on Hotline meanwhile)
#   benches/load.sh --driver sipp --proxy kamailio --kam-children 2 --mode cpu ...
#   benches/load.sh --driver sipp --mode instr [--proxy kamailio] --cpu-rate 200 --cpu-secs 10
#                                            # instructions per call (callgrind: deterministic),
#                                            # every thread and process of the proxy
#                                            # the same SIPp run through Kamailio 5.6 (Debian package
#                                            # kamailio) with benches/kamailio/kamailio.cfg instead
#
# Output: one line per run and a summary table; raw RESULT lines are kept in $OUT/results.txt.
set -euo pipefail

WARM=0             # --warmup: seconds at the rate before CPU (--driver sipp) or latency is measured
DRIVER=load        # load = hotline-load; sipp = SIPp UAC + SIPp UASes (benches/sipp/*.xml)
PROXY=hotline      # hotline, or kamailio (--driver sipp only): the proxy under test
KAM_CHILDREN=2     # --kam-children: Kamailio's UDP worker processes (children=)
WORKERS=""          # server.workers for Hotline (empty: its default, one shard per core)
COALESCE=""         # server.coalesce_us for Hotline (empty: its default)
VG=()               # --mode instr: the valgrind command the proxy runs under
MODE=all            # all = cpu + ramp + latency; or one of cpu, ramp, latency, sustain, concurrent
SCENARIO=basic
TCP=""
START=1000
STEP=1000
MAX=30000
STEP_SECS=8
HOLD=1
CPU_RATE=2000
CPU_SECS=20
RATE=""
SECS=60
CONCURRENT=100000
BUDGET=300
THREADS=2
UAS_THREADS=1
BUILD=1
OUT=""

usage() { sed -n '2,27p' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE=$2; shift ;;
        --scenario) SCENARIO=$2; shift ;;
        --tcp) TCP=--tcp ;;
        --start) START=$2; shift ;;
        --step) STEP=$2; shift ;;
        --max) MAX=$2; shift ;;
        --step-secs) STEP_SECS=$2; shift ;;
        --hold) HOLD=$2; shift ;;
        --cpu-rate) CPU_RATE=$2; shift ;;
        --cpu-secs) CPU_SECS=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --concurrent) CONCURRENT=$2; shift ;;
        --budget) BUDGET=$2; shift ;;
        --threads) THREADS=$2; shift ;;
        --uas-threads) UAS_THREADS=$2; shift ;;
        --no-build) BUILD=0 ;;
        --workers) WORKERS=$2; shift ;;
        --coalesce) COALESCE=$2; shift ;;
        --driver) DRIVER=$2; shift ;;
        --proxy) PROXY=$2; shift ;;
        --kam-children) KAM_CHILDREN=$2; shift ;;
        --hotline-bin) HOTLINE_BIN=$2; shift ;;
        --warmup) WARM=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/target/release"
OUT=${OUT:-$(mktemp -d /tmp/hotline-load.XXXXXX)}
mkdir -p "$OUT"
T0=$(date +%s)
PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p hotline -p hotline-benches --bins)
fi

# Private copies: the shared target/ may be rebuilt by someone else during a long run.
[ "$PROXY" = kamailio ] || cp "${HOTLINE_BIN:-$BIN/hotline}" "$OUT/hotline"
cp "$BIN/hotline-load" "$OUT/"
BIN=$OUT
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process and, for Kamailio, of its child processes
    # (fields 14, 15 of /proc/PID/stat; comm may hold spaces)
    local pids=$1
    [ "$1" = "${HL_PID:-}" ] && [ "$PROXY" = kamailio ] && pids="$1 $(pgrep -P "$1" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    (cd /proc && awk -v f="${2:-both}" '{ sub(/^.*\) /, ""); s += (f == "sys") ? $13 : $12 + $13 } END { print s }' $(printf '%s/stat ' $pids))
}
sys_ticks() { cpu_ticks "$1" sys; } # stime alone: the kernel's share
status_kb() { # a /proc/PID/status field; for Kamailio's VmRSS/VmHWM the sum of Pss over its
    # processes instead (each one maps the same shared memory, so their RSS would count it N times)
    if [ "$1" = "${HL_PID:-}" ] && [ "$PROXY" = kamailio ] && [ "$2" != Pid ]; then
        local p
        for p in "$1" $(pgrep -P "$1"); do awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup"; done |
            awk '{ s += $1 } END { print s }'
        return
    fi
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}
field() { # field NAME from a RESULT line
    echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}
wait_line() { # wait_line FILE REGEX: print the first match, give up after 10 s (60 under valgrind)
    for _ in $(seq $(( ${#VG[@]} > 0 ? 600 : 100 ))); do
        if grep -Eo "$2" "$1" 2>/dev/null | head -1 | grep .; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for /$2/ in $1" >&2; cat "$1" >&2; return 1
}

# --- start the UAS, then Hotline pointing at it --------------------------------------------
if [ "$DRIVER" = sipp ]; then
    command -v sipp >/dev/null || { echo "sipp not found (Debian package sip-tester)" >&2; exit 2; }
    [ -z "$TCP" ] || { echo "--driver sipp: UDP only here" >&2; exit 2; }
    case "$MODE" in cpu|sustain|instr) ;; *) echo "--driver sipp: modes cpu, sustain, instr" >&2; exit 2 ;; esac
    # SIPp wants fixed ports: pick a free-looking block of four.
    SP=$(( 20000 + (RANDOM % 2000) * 10 ))
    UAS_ADDR=127.0.0.1:$SP
    for x in answer:0 busy:1; do
        # -bg prints "Background mode - PID=[N]".
        sipp -sf "$ROOT/benches/sipp/uas_${x%%:*}.xml" -i 127.0.0.1 -mi 127.0.0.1 -mp $((SP + 100 + ${x##*:} * 10)) \
            -p $((SP + ${x##*:})) -nostdin -bg >"$OUT/sipp-uas-${x%%:*}.out" 2>&1 || true
        pid=$(grep -o 'PID=\[[0-9]*\]' "$OUT/sipp-uas-${x%%:*}.out" | tr -dc 0-9)
        [ -n "$pid" ] || { echo "SIPp UAS ${x%%:*} did not start:" >&2; cat "$OUT/sipp-uas-${x%%:*}.out" >&2; exit 1; }
        PIDS+=("$pid")
        [ "${x%%:*}" = answer ] && UAS_PID=$pid
    done
    "$BIN/hotline-load" config --listen 127.0.0.1:0 --uas "$UAS_ADDR" --uas-busy "127.0.0.1:$((SP + 1))" \
        --cdr-dir "$OUT/cdr" >"$OUT/hotline.toml"
else
    "$BIN/hotline-load" uas --listen 127.0.0.1:0 --threads "$UAS_THREADS" >"$OUT/uas.out" 2>"$OUT/uas.err" &
    UAS_PID=$!; PIDS+=("$UAS_PID")
    UAS_ADDR=$(wait_line "$OUT/uas.err" 'udp\+tcp 127\.0\.0\.1:[0-9]+' | awk '{print $2}')
    "$BIN/hotline-load" config --listen 127.0.0.1:0 --uas "$UAS_ADDR" $TCP --cdr-dir "$OUT/cdr" >"$OUT/hotline.toml"
fi
if [ -n "$WORKERS" ]; then
    # server.workers: shards (0 = one per core).
    sed -i "s/^\[server\]\$/[server]\nworkers = $WORKERS/" "$OUT/hotline.toml"
fi
if [ -n "$COALESCE" ]; then
    sed -i "s/^\[server\]\$/[server]\ncoalesce_us = $COALESCE/" "$OUT/hotline.toml"
fi
# --mode instr: the proxy runs under callgrind, which counts every instruction of every
# thread (and, for Kamailio, of every forked process: one output file each).
# CALLGRIND_OPTS adds options, e.g. "--cache-sim=yes" for simulated cache misses per call.
if [ "$MODE" = instr ]; then
    [ "$DRIVER" = sipp ] || { echo "--mode instr: with --driver sipp only" >&2; exit 2; }
    command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 2; }
    # shellcheck disable=SC2206
    VG=(valgrind --tool=callgrind --trace-children=yes ${CALLGRIND_OPTS:-} --callgrind-out-file="$OUT/callgrind.%p")
fi
if [ "$PROXY" = kamailio ]; then
    # The proxy under test is Kamailio instead (HL_* then name it): same SIPp peers and numbers.
    [ "$DRIVER" = sipp ] || { echo "--proxy kamailio: with --driver sipp only" >&2; exit 2; }
    command -v kamailio >/dev/null || { echo "kamailio not found (Debian package kamailio)" >&2; exit 2; }
    sed -e "s/@PORT@/$((SP + 7))/; s/@UAS@/$SP/g; s/@BUSY@/$((SP + 1))/g; s/@CHILDREN@/$KAM_CHILDREN/" \
        "$ROOT/benches/kamailio/kamailio.cfg" >"$OUT/kamailio.cfg"
    # -DD: stay in the foreground (its workers are its children), -E: log to stderr;
    # 1 GiB shared memory: at 2,000 CPS ~20,000 transactions of ~12 KB each wait out tm's
    # 5 s wait_timer, and 256 MiB ran out. KAM_ARGS adds options (e.g. "-x tlsf -X tlsf").
    # shellcheck disable=SC2086
    "${VG[@]}" kamailio -f "$OUT/kamailio.cfg" -DD -E -m 1024 -M 16 -Y "$OUT" ${KAM_ARGS:-} \
        >"$OUT/hotline.out" 2>"$OUT/hotline.err" &
    HL_PID=$!; PIDS+=("$HL_PID")
    HL_ADDR=127.0.0.1:$((SP + 7))
    sleep $(( ${#VG[@]} > 0 ? 10 : 1 ))
    kill -0 "$HL_PID" 2>/dev/null || { echo "kamailio did not start:" >&2; cat "$OUT/hotline.err" >&2; exit 1; }
else
    [ "$PROXY" = hotline ] || { echo "--proxy: hotline or kamailio" >&2; exit 2; }
    "${VG[@]}" "$BIN/hotline" run --config "$OUT/hotline.toml" >"$OUT/hotline.out" 2>"$OUT/hotline.err" &
    HL_PID=$!; PIDS+=("$HL_PID")
    HL_ADDR=$(wait_line "$OUT/hotline.err" 'sip=127\.0\.0\.1:[0-9]+' | cut -d= -f2)
fi

CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
MEM_GB=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
echo "hotline-load: $(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc), $CPU_MODEL, ${MEM_GB} GiB, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(grep -o 'version=.*' "$OUT/hotline.err" | head -1) $(grep -o 'listening.*' "$OUT/hotline.err" | head -1)"
[ "$PROXY" = kamailio ] && echo "$(kamailio -v | head -1), children=$KAM_CHILDREN"
echo "$PROXY pid $HL_PID at $HL_ADDR, UAS pid $UAS_PID at $UAS_ADDR, scenario $SCENARIO ${TCP:+(TCP)}, results in $OUT"
SUMMARY=()

# run_uac RATE SECS [extra args...]: one bounded UAC run against TARGET (default Hotline);
# sets RES (the RESULT line), HL_US (Hotline CPU µs per completed call), LG_US (load gen's).
TARGET=""
run_uac() {
    local rate=$1 secs=$2; shift 2
    local target=${TARGET:-$HL_ADDR}
    local h0 u0 h1 u1 out
    h0=$(cpu_ticks "$HL_PID"); u0=$(cpu_ticks "$UAS_PID")
    out=$("$BIN/hotline-load" uac --target "$target" --scenario "$SCENARIO" $TCP --rate "$rate" \
        --duration "$secs" --hold "$HOLD" --threads "$THREADS" "$@" 2>>"$OUT/uac.err") || true
    h1=$(cpu_ticks "$HL_PID"); u1=$(cpu_ticks "$UAS_PID")
    echo "$out" >>"$OUT/uac.out"
    RES=$(echo "$out" | grep '^RESULT' || echo "RESULT attempted=0 completed=0 failed=0 failed_pct=100")
    echo "rate=$rate secs=$secs target=$target $RES" >>"$OUT/results.txt"
    local done_calls
    done_calls=$(field "$RES" completed)
    HL_US=$(awk -v d=$((h1 - h0)) -v n="$done_calls" -v t="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / t / n; else print "-" }')
    LG_US=$(awk -v d=$((u1 - u0)) -v n="$done_calls" -v t="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / t / n; else print "-" }')
}
# The SIPp caller: benches/sipp/uac_load.xml dialling the scenario's number at RATE for
# WARM + SECS seconds; Hotline's CPU is measured over the last SECS only (WARM, from
# --warmup, lets memory and the 32 s transaction-retention window reach steady state first;
# with it, calls in the window = RATE × SECS less the failed share, as pacing is open-loop).
# Sets RES like hotline-load's RESULT line (attempted/completed/failed/failed_pct/cps; the
# latency fields stay "-": SIPp's response-time histogram is not parsed).
run_sipp_uac() {
    local rate=$1 secs=$2
    local number
    case "$SCENARIO" in basic) number=4008000001 ;; hunt486) number=4008000002 ;;
        *) echo "--driver sipp: scenarios basic and hunt486" >&2; exit 2 ;; esac
    local warm=${WARM:-0}
    local calls=$((rate * (warm + secs))) h0 u0 h1 u1 t0 t1 sipp_pid perf_pid=""
    rm -f "$OUT/sipp-uac.csv"
    # SIPp's own -timeout did not stop a caller that an overloaded proxy kept retrying (8,000
    # CPS against Kamailio ran 8 minutes): the wall clock bounds it too (its stat file is
    # written every second, so the result stands).
    timeout -k 5 $((warm + secs + HOLD + 60)) \
    sipp -sf "$ROOT/benches/sipp/uac_load.xml" -s "$number" "$HL_ADDR" -i 127.0.0.1 -mi 127.0.0.1 \
        -mp $((SP + 200)) -p $((SP + 5)) -r "$rate" -m "$calls" -d $((HOLD * 1000)) -nostdin \
        -timeout $((warm + secs + HOLD + 40)) -trace_stat -stf "$OUT/sipp-uac.csv" -fd 1 \
        >"$OUT/sipp-uac.out" 2>&1 &
    sipp_pid=$!
    [ "$warm" -gt 0 ] && sleep "$warm"
    h0=$(cpu_ticks "$HL_PID"); u0=$(cpu_ticks "$UAS_PID"); t0=$(date +%s.%N)
    hs0=$(sys_ticks "$HL_PID"); us0=$(sys_ticks "$UAS_PID")
    if [ -n "${PERF:-}" ]; then   # e.g. PERF="record -g -o /tmp/p.data" or PERF="stat -e ..."
        local pids=$HL_PID   # Kamailio: its main process and every child
        [ "$PROXY" = kamailio ] && pids="$HL_PID,$(pgrep -P "$HL_PID" | paste -sd,)"
        perf $PERF -p "$pids" >"$OUT/perf.out" 2>&1 & perf_pid=$!
    fi
    if [ "$warm" -gt 0 ]; then
        sleep "$secs"
        h1=$(cpu_ticks "$HL_PID"); u1=$(cpu_ticks "$UAS_PID"); t1=$(date +%s.%N)
        hs1=$(sys_ticks "$HL_PID"); us1=$(sys_ticks "$UAS_PID")
        [ -z "$perf_pid" ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
        wait "$sipp_pid" || true
    else
        wait "$sipp_pid" || true
        h1=$(cpu_ticks "$HL_PID"); u1=$(cpu_ticks "$UAS_PID"); t1=$(date +%s.%N)
        hs1=$(sys_ticks "$HL_PID"); us1=$(sys_ticks "$UAS_PID")
        [ -z "$perf_pid" ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
    fi
    local ok n
    ok=$(tail -1 "$OUT/sipp-uac.csv" | awk -F';' '{ print $16 }')
    ok=${ok:-0}
    n=$ok
    # With a warm-up the window saw rate × secs calls, less the failed share (calls are paced).
    [ "$warm" -gt 0 ] && n=$(( rate * secs * ok / calls ))
    RES=$(awk -v a="$calls" -v c="$ok" -v t="$(echo "$t1 - $t0" | bc)" -v h="$HOLD" -v w="$warm" -v r="$rate" \
        'BEGIN { printf "RESULT attempted=%d completed=%d failed=%d failed_pct=%.3f cps=%.0f answer_p50_us=- answer_p99_us=- answer_p999_us=-", a, c, a - c, (a - c) * 100 / a, (w > 0) ? r : c / (t - h) }')
    echo "rate=$rate secs=$secs warm=$warm sipp $RES" >>"$OUT/results.txt"
    HL_US=$(awk -v d=$((h1 - h0)) -v n="$n" -v t="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / t / n; else print "-" }')
    LG_US=$(awk -v d=$((u1 - u0)) -v n="$n" -v t="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / t / n; else print "-" }')
    HL_SYS_US=$(awk -v d=$((hs1 - hs0)) -v n="$n" -v t="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / t / n; else print "-" }')
    LG_SYS_US=$(awk -v d=$((us1 - us0)) -v n="$n" -v t="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / t / n; else print "-" }')
}
[ "$DRIVER" = sipp ] && run_uac() { run_sipp_uac "$@"; }

line() {
    printf '%-10s rate %6s  attempted %7s  completed %7s  failed %5s (%7s %%)  cps %8s  200 p50/p99/p99.9 %s/%s/%s µs  %s %s µs/call  uas %s µs/call  RSS %s MiB  sys %s/%s µs/call (proxy/uas)\n' \
        "$1" "$2" "$(field "$RES" attempted)" "$(field "$RES" completed)" "$(field "$RES" failed)" \
        "$(field "$RES" failed_pct)" "$(field "$RES" cps)" "$(field "$RES" answer_p50_us)" \
        "$(field "$RES" answer_p99_us)" "$(field "$RES" answer_p999_us)" "$PROXY" "$HL_US" "$LG_US" \
        "$(( $(status_kb "$HL_PID" VmRSS) / 1024 ))" "${HL_SYS_US:--}" "${LG_SYS_US:--}"
}
elapsed() { echo $(( $(date +%s) - T0 )); }

# --- modes --------------------------------------------------------------------------------
mode_cpu() {
    WARM=0 run_uac 200 2 >/dev/null   # warm-up
    sleep "$HOLD"
    run_uac "$CPU_RATE" "$CPU_SECS"
    line cpu "$CPU_RATE"
    SUMMARY+=("CPU per call at $CPU_RATE CPS ($SCENARIO): $PROXY $HL_US µs (utime+stime / completed), failed $(field "$RES" failed_pct) %")
}

MAX_OK=0
mode_ramp() {
    local rate=$START
    while [ "$rate" -le "$MAX" ]; do
        if [ $(( $(elapsed) + STEP_SECS + HOLD + 5 )) -gt "$BUDGET" ]; then
            echo "ramp: time budget ($BUDGET s) reached"; break
        fi
        run_uac "$rate" "$STEP_SECS"
        line ramp "$rate"
        local ok
        ok=$(awk -v f="$(field "$RES" failed_pct)" -v c="$(field "$RES" cps)" -v r="$rate" \
            'BEGIN { print (f < 0.1 && c >= 0.97 * r) ? 1 : 0 }')
        if [ "$ok" = 1 ]; then MAX_OK=$rate; else break; fi
        rate=$((rate + STEP))
        sleep "$HOLD"
    done
    SUMMARY+=("Highest rate with < 0.1 % failed calls ($SCENARIO, ${STEP_SECS}s steps of $STEP): $MAX_OK CPS")
}

mode_latency() {
    local rate=${RATE:-$(( MAX_OK > 0 ? MAX_OK / 2 : CPU_RATE / 2 ))}
    [ "$rate" -gt 0 ] || rate=500
    sleep "$HOLD"
    # Baseline: the same calls straight to the UAS (no Hotline): what the peers cost.
    TARGET=$UAS_ADDR run_uac "$rate" 10
    local b50 b99 b999
    b50=$(field "$RES" answer_p50_us); b99=$(field "$RES" answer_p99_us); b999=$(field "$RES" answer_p999_us)
    line direct "$rate"
    sleep "$HOLD"
    if [ "$WARM" -gt 0 ]; then
        # Through Hotline first, so the 32 s retention window and the heap are at steady state.
        run_uac "$rate" "$WARM"
        line warmup "$rate"
    fi
    run_uac "$rate" 10
    line latency "$rate"
    SUMMARY+=("Setup latency INVITE→200 at $rate CPS: direct p50/p99/p99.9 $b50/$b99/$b999 µs, through hotline $(field "$RES" answer_p50_us)/$(field "$RES" answer_p99_us)/$(field "$RES" answer_p999_us) µs; added p99 ≈ $(( $(field "$RES" answer_p99_us) - b99 )) µs")
}

mode_sustain() {
    local rate=${RATE:-10000}
    run_uac "$rate" "$SECS"
    line sustain "$rate"
    SUMMARY+=("Sustained $rate CPS for $SECS s ($SCENARIO): completed $(field "$RES" completed) / $(field "$RES" attempted), failed $(field "$RES" failed_pct) %, achieved $(field "$RES" cps) CPS, $PROXY $HL_US µs/call")
}

mode_concurrent() {
    local rate=${RATE:-2000}
    local ramp=$(( (CONCURRENT + rate - 1) / rate ))
    local hold=$(( ramp + 20 ))
    local rss0 peak=0 n=0
    rss0=$(status_kb "$HL_PID" VmRSS)
    "$BIN/hotline-load" uac --target "$HL_ADDR" --scenario "$SCENARIO" $TCP --rate "$rate" \
        --calls "$CONCURRENT" --duration $((ramp + 1)) --hold "$hold" --threads "$THREADS" \
        >"$OUT/concurrent.out" 2>>"$OUT/uac.err" &
    local uac=$!; PIDS+=("$uac")
    # Sample RSS while the calls are up (every call is answered by ramp + a few seconds).
    for _ in $(seq $((ramp + 10))); do
        sleep 1
        local r; r=$(status_kb "$HL_PID" VmRSS); [ "$r" -gt "$peak" ] && peak=$r
        n=$((n + 1))
    done
    wait "$uac" || true
    RES=$(grep '^RESULT' "$OUT/concurrent.out" || echo "RESULT completed=0")
    echo "concurrent=$CONCURRENT rate=$rate $RES" >>"$OUT/results.txt"
    local per
    per=$(awk -v a="$peak" -v b="$rss0" -v n="$CONCURRENT" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
    SUMMARY+=("Concurrent answered calls: $CONCURRENT (hold ${hold}s, $rate CPS ramp): hotline RSS $((rss0 / 1024)) MiB idle → $((peak / 1024)) MiB peak (VmHWM $(( $(status_kb "$HL_PID" VmHWM) / 1024 )) MiB), ≈ $per B per active call; completed $(field "$RES" completed), failed $(field "$RES" failed)")
}

# Instructions per call: warm up, wait until the warm-up's retained transactions have expired
# (RFC 6026's 32 s; Kamailio's wait_timer is 5 s), zero the counters, run the calls, wait
# again until all of their state has expired, dump. So the count holds everything the
# proxy does for those calls, timers and expiry included, and nothing of start-up.
mode_instr() {
    local pids=$HL_PID
    [ "$PROXY" = kamailio ] && pids="$HL_PID $(pgrep -P "$HL_PID" | tr '\n' ' ')"
    WARM=0 run_uac 100 2 >/dev/null
    sleep 40
    # shellcheck disable=SC2086
    for p in $pids; do callgrind_control -z "$p" >/dev/null; done
    run_uac "$CPU_RATE" "$CPU_SECS"
    line instr "$CPU_RATE"
    sleep 40
    rm -f "$OUT"/callgrind.*.[0-9]*
    # shellcheck disable=SC2086
    for p in $pids; do callgrind_control -d "$p" >/dev/null; done
    sleep 2
    local total calls per
    total=$(cat "$OUT"/callgrind.*.[0-9]* | awk '/^summary:/ { s += $2 } END { printf "%.0f", s }')
    calls=$(field "$RES" completed)
    # Keep the window's dumps for callgrind_annotate (the proxy's exit writes its own file).
    mkdir -p "$OUT/window" && cp "$OUT"/callgrind.*.[0-9]* "$OUT/window/"
    per=$(awk -v t="$total" -v n="$calls" 'BEGIN { if (n > 0) printf "%.0f", t / n; else print "-" }')
    echo "instr total=$total calls=$calls per_call=$per files=$(ls "$OUT"/callgrind.*.[0-9]* | wc -l)" >>"$OUT/results.txt"
    SUMMARY+=("Instructions per call ($SCENARIO, $calls calls at $CPU_RATE CPS, callgrind, all threads/processes): $PROXY $per")
}

case "$MODE" in
    instr) mode_instr ;;
    all) mode_cpu; sleep "$HOLD"; mode_ramp; mode_latency ;;
    cpu) mode_cpu ;;
    ramp) mode_ramp ;;
    latency) mode_latency ;;
    sustain) mode_sustain ;;
    concurrent) mode_concurrent ;;
    *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac

echo
echo "== summary ($(elapsed) s, $(date -u +%Y-%m-%d), nproc $(nproc), $CPU_MODEL) =="
for s in "${SUMMARY[@]}"; do echo "  $s"; done
echo "  $PROXY RSS now $(( $(status_kb "$HL_PID" VmRSS) / 1024 )) MiB, peak $(( $(status_kb "$HL_PID" VmHWM) / 1024 )) MiB"
