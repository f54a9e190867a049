#!/usr/bin/env bash
# Interleaved A/B of the HTTP benchmark's servers from two builds of `bench --bin http` (say,
# before and after a change): our schedulers from both, tokio and smol from the second, in the
# same rounds; prints medians and ratios to tokio and smol. Needs Debian's `wrk`.
# Usage: tools/http_ab.sh OLD_HTTP_BIN NEW_HTTP_BIN [ROUNDS=3] [SECONDS=5]
set -euo pipefail
old=$1 new=$2 rounds=${3:-3} secs=${4:-5}
configs="old:worksteal new:worksteal old:priority new:priority old:fifo new:fifo new:tokio new:smol"
port=4100 out=$(mktemp)
for round in $(seq "$rounds"); do
    for c in $configs; do
        if [ "${c%%:*}" = old ]; then bin=$old; else bin=$new; fi
        rt=${c##*:} port=$((port + 1))
        "$bin" serve "$rt" "$port" & pid=$!
        for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
        rps=$(wrk -t1 -c100 -d"${secs}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
        kill "$pid"; wait "$pid" 2>/dev/null || true
        echo "$round $c $rps" | tee -a "$out"
    done
done
python3 - "$out" <<'PY'
import statistics, sys, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    _, c, v = line.split()
    d[c].append(float(v))
tokio, smol = statistics.median(d["new:tokio"]), statistics.median(d["new:smol"])
for c, v in d.items():
    m = statistics.median(v)
    print(f"{c:14} {m:9.0f} req/s  {m / tokio:.2f}x tokio  {m / smol:.2f}x smol")
PY
