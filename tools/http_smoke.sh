#!/usr/bin/env bash
# Smoke test of examples/http_server (the axum example): start it under each scheduler, send
# an HTTP/1.1 request over bash's /dev/tcp, check the answer, stop it with SIGTERM and check
# that it stopped gracefully. Usage: tools/http_smoke.sh PATH_TO_http_server
set -euo pipefail
bin=$1
port=3917
for scheduler in worksteal priority fifo; do
    RUNTIME_SCHEDULER=$scheduler "$bin" "127.0.0.1:$port" > /tmp/http_smoke.out 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.05
    done
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /users/7 HTTP/1.1\r\nHost: smoke\r\nConnection: close\r\n\r\n' >&3
    answer=$(cat <&3)
    exec 3>&-
    kill -TERM "$pid"
    wait "$pid"
    grep -q "^HTTP/1.1 200" <<<"$answer" || { echo "bad answer under $scheduler: $answer"; exit 1; }
    grep -q "user 7" <<<"$answer" || { echo "bad body under $scheduler: $answer"; exit 1; }
    grep -q "^stopped: .* connections, 0 ended with an error" /tmp/http_smoke.out \
        || { echo "not a graceful stop under $scheduler:"; cat /tmp/http_smoke.out; exit 1; }
    echo "http_server under $scheduler: ok"
done
