#!/usr/bin/env bash
# The cost of the cluster (issue #15, "Measure"): the same load through one node without Redis
# and through two nodes (127.0.0.2, 127.0.0.3) sharing their state in a redis-server started
# here, alternated (1 2 1 2 ...). Per run: CPU µs per completed call of the whole system under
# test (the Hotline processes, plus redis-server in the cluster runs), the callers' answer
# latency (INVITE → 200, p50 / p99), and from the nodes' /metrics the Redis round trips per
# call by kind. Loopback only; every run is bounded by --secs; everything started is killed on
# exit.
#
#   benches/cluster.sh                                   # 2 rounds, 1,000 CPS, 15 s, basic
#   benches/cluster.sh --rate 2000 --secs 20 --rounds 3 --scenario hunt486
#   benches/cluster.sh --limited                         # targets with max_concurrent (a lease
#                                                        # that counts), like a real plan
#   benches/cluster.sh --no-build --out DIR
set -euo pipefail

RATE=1000
SECS=15
ROUNDS=2
SCENARIO=basic
HOLD=1
BUILD=1
LIMITED=""
OUT=""
usage() { sed -n '2,14p' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --scenario) SCENARIO=$2; shift ;;
        --hold) HOLD=$2; shift ;;
        --limited) LIMITED=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option $1" >&2; usage 2 ;;
    esac
    shift
done
[ "$SECS" -le 120 ] || { echo "--secs: at most 120" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server not found (Debian package redis-server)" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/hotline-cluster-bench.XXXXXX)}
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p hotline -p hotline-benches --bins)
fi
cp "$ROOT/target/release/hotline" "$ROOT/target/release/hotline-load" "$OUT/"
BIN=$OUT
CLK_TCK=$(getconf CLK_TCK)
ticks() { # utime + stime of the given processes
    # shellcheck disable=SC2046
    (cd /proc && awk '{ sub(/^.*\) /, ""); s += $12 + $13 } END { print s + 0 }' $(printf '%s/stat ' "$@"))
}
wait_line() { # wait_line FILE REGEX: print the first match, give up after 10 s
    for _ in $(seq 100); do
        if grep -Eo "$2" "$1" 2>/dev/null | head -1 | grep .; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for /$2/ in $1" >&2; cat "$1" >&2; return 1
}
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
trips() { # trips ADMIN: "kind=count ..." from a node's /metrics
    curl -s "http://$1/metrics" | awk -F'[{}" ]+' '/^hotline_cluster_redis_round_trips_total\{/ { printf "%s=%s ", $3, $4 }'
}

"$BIN/hotline-load" uas --listen 127.0.0.1:0 --threads 1 >"$OUT/uas.out" 2>"$OUT/uas.err" &
UAS_PID=$!; PIDS+=("$UAS_PID")
UAS_ADDR=$(wait_line "$OUT/uas.err" 'udp\+tcp 127\.0\.0\.1:[0-9]+' | awk '{print $2}')

# node NAME IP [REDIS_URL]: start a node, set NODE_PID / NODE_SIP / NODE_ADMIN.
node() {
    local name=$1 ip=$2 redis=${3:-}
    "$BIN/hotline-load" config --listen "$ip:0" --uas "$UAS_ADDR" --cdr-dir "$OUT/cdr-$name-$RUN" \
        | sed "s/^admin = \"off\"/admin = \"$ip:0\"/" >"$OUT/$name-$RUN.toml"
    if [ -n "$LIMITED" ]; then
        sed -i 's|^uri = "sip:\(answer\|busy\)\(.*\)|uri = "sip:\1\2\nmax_concurrent = 100000|' "$OUT/$name-$RUN.toml"
    fi
    if [ -n "$redis" ]; then
        printf '\n[cluster]\nredis = "%s"\nnode = "%s"\naddress = "sip.hotline.bench"\n' \
            "$redis" "$name" >>"$OUT/$name-$RUN.toml"
    fi
    "$BIN/hotline" run --config "$OUT/$name-$RUN.toml" >"$OUT/$name-$RUN.out" 2>"$OUT/$name-$RUN.err" &
    NODE_PID=$!; PIDS+=("$NODE_PID")
    NODE_SIP=$(wait_line "$OUT/$name-$RUN.err" "sip=$ip:[0-9]+" | cut -d= -f2)
    NODE_ADMIN=$(wait_line "$OUT/$name-$RUN.err" "admin endpoint http://[0-9.:]+" | sed 's|.*http://||')
}
# uac TARGET RATE: one bounded caller run in the background; its RESULT line goes to FILE.
uac() {
    "$BIN/hotline-load" uac --target "$1" --scenario "$SCENARIO" --rate "$2" --duration "$SECS" \
        --hold "$HOLD" --threads 1 >"$3" 2>>"$OUT/uac.err"
}

echo "cluster bench: $(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$BIN/hotline" --version | head -1); $(redis-server --version | cut -d' ' -f1-3); scenario $SCENARIO${LIMITED:+ (limited targets)}, $RATE CPS, ${SECS} s, hold ${HOLD} s; results in $OUT"
printf '%-8s %-6s %10s %10s %10s %8s  %s\n' setup round calls us/call p50_us p99_us "redis round trips per call"
RUN=0
for round in $(seq "$ROUNDS"); do
    for setup in single cluster; do
        RUN=$((RUN + 1))
        if [ "$setup" = single ]; then
            node a 127.0.0.2
            sut=("$NODE_PID")
            t0=$(ticks "${sut[@]}")
            uac "$NODE_SIP" "$RATE" "$OUT/uac-$RUN-a.out"
            t1=$(ticks "${sut[@]}")
            results=("$OUT/uac-$RUN-a.out")
            kill -9 "$NODE_PID"
            per=""
        else
            port=$(free_port)
            mkdir -p "$OUT/redis-$RUN"
            redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
                --dir "$OUT/redis-$RUN" >"$OUT/redis-$RUN.log" 2>&1 &
            REDIS_PID=$!; PIDS+=("$REDIS_PID")
            sleep 0.5
            node a 127.0.0.2 "redis://127.0.0.1:$port/0"; A_PID=$NODE_PID; A_SIP=$NODE_SIP; A_ADM=$NODE_ADMIN
            node b 127.0.0.3 "redis://127.0.0.1:$port/0"; B_PID=$NODE_PID; B_SIP=$NODE_SIP; B_ADM=$NODE_ADMIN
            sleep 2 # both see Redis up, scripts loaded
            sut=("$A_PID" "$B_PID" "$REDIS_PID")
            before="$(trips "$A_ADM") $(trips "$B_ADM")"
            t0=$(ticks "${sut[@]}")
            half=$(awk -v r="$RATE" 'BEGIN { printf "%.1f", r / 2 }')
            uac "$A_SIP" "$half" "$OUT/uac-$RUN-a.out" &
            ua=$!
            uac "$B_SIP" "$half" "$OUT/uac-$RUN-b.out"
            wait "$ua"
            t1=$(ticks "${sut[@]}")
            sleep 1 # the last calls' end claims and releases
            after="$(trips "$A_ADM") $(trips "$B_ADM")"
            results=("$OUT/uac-$RUN-a.out" "$OUT/uac-$RUN-b.out")
            kill -9 "$A_PID" "$B_PID" "$REDIS_PID"
            per=$before
        fi
        calls=0; p50=0; p99=0
        for f in "${results[@]}"; do
            res=$(grep '^RESULT' "$f" || echo "RESULT completed=0")
            echo "setup=$setup round=$round $res" >>"$OUT/results.txt"
            c=$(field "$res" completed); calls=$((calls + ${c:-0}))
            p=$(field "$res" answer_p50_us); [ "${p:-0}" -gt "$p50" ] 2>/dev/null && p50=$p
            p=$(field "$res" answer_p99_us); [ "${p:-0}" -gt "$p99" ] 2>/dev/null && p99=$p
        done
        us=$(awk -v d=$((t1 - t0)) -v n="$calls" -v t="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / t / n; else print "-" }')
        rt=""
        if [ -n "$per" ]; then
            rt=$(awk -v b="$before" -v a="$after" -v n="$calls" 'BEGIN {
                nb = split(b, x, " "); for (i = 1; i <= nb; i++) { split(x[i], kv, "="); B[kv[1]] += kv[2] }
                na = split(a, y, " "); for (i = 1; i <= na; i++) { split(y[i], kv, "="); A[kv[1]] += kv[2]; K[kv[1]] = 1 }
                for (k in K) { t += A[k] - B[k]; if (k != "background") s = s sprintf("%s %.2f ", k, (A[k] - B[k]) / n) }
                printf "%stotal %.2f", s, (t - (A["background"] - B["background"])) / n }')
        fi
        printf '%-8s %-6s %10s %10s %10s %8s  %s\n' "$setup" "$round" "$calls" "$us" "$p50" "$p99" "$rt" | tee -a "$OUT/summary.txt"
    done
done
