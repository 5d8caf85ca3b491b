#!/usr/bin/env bash
# Idle RSS and Bilibili call count of `bilibridge run` with the embedded
# NATS, against the fake Bilibili (cmd/bilifake), over one minute.
# Usage: scripts/bench-idle-rss.sh   (from the repository root)
set -euo pipefail
work=$(mktemp -d)
trap 'kill $fake 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/bilibridge" ./cmd/bilibridge
go build -o "$work/bilifake" ./cmd/bilifake
"$work/bilifake" -addr 127.0.0.1:18081 > "$work/fake.log" 2>&1 &
fake=$!
sleep 1
cd "$work"
export BILI_API_URL=http://127.0.0.1:18081 BILI_MAIN_API_URL=http://127.0.0.1:18081 BILI_PASSPORT_URL=http://127.0.0.1:18081 BILI_WWW_URL=http://127.0.0.1:18081
export BILI_UID=425503913 BILI_SESSDATA='demo_sessdata%2C1893456000%2Cb1f2c*31' BILI_JCT=9f1c2b3a4d5e6f708192a3b4c5d6e7f8
export DATA_DIR=$work/data NATS_LISTEN=127.0.0.1:14222 HTTP_ADDR=127.0.0.1:18080 POLL_INTERVAL=6s
./bilibridge run > bridge.log 2>&1 &
pid=$!
sleep 60
grep -E "VmRSS|VmHWM" /proc/$pid/status
curl -s 127.0.0.1:18080/metrics | grep -E "^bilibridge_bilibili_calls_total|^process_resident|^go_goroutines"
kill -TERM $pid; wait $pid; echo "exit $?"
tail -3 bridge.log
