#!/usr/bin/env bash
# Times the release wordcount example on the direct, rayon and portable runners (Beam Python's
# job service and Prism), and reads the job server's CPU time from /proc, so the portable job's
# time splits into runner (job server) and harness (the Runnel program). Prints one line each and
# checks every output against the direct runner's.
#   scripts/bench-portable.sh INPUT      (e.g. the 50 MB text `cargo bench --bench rayon_wordcount`
#                                         leaves in /tmp/runnel-bench-wordcount-50/input.txt)
# Needs: /usr/bin/time, the venv of scripts/beam-venv.sh, Prism from scripts/prism.sh, and
# `cargo build --release --example wordcount`. Hold the build lock: nothing else should run.
set -euo pipefail
IN=${1:?usage: scripts/bench-portable.sh INPUT}
cd "$(dirname "$0")/.."
BIN=target/release/examples/wordcount
PY="${RUNNEL_BEAM_VENV:-/opt/beam-venv}/bin/python"
PRISM="${RUNNEL_PRISM:-$(go env GOPATH)/bin/prism}"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; kill $(jobs -p) 2>/dev/null || true' EXIT
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system, in clock ticks
TICKS=$(getconf CLK_TCK)
timed() { /usr/bin/time -f "$1 wall=%es cpu=%Us+%Ss peak_rss=%MkB" "$BIN" --input="$IN" --output="$OUT/$1/counts" --progress=off "${@:2}" 2>&1 | grep "wall="; }
timed direct --runner=direct --direct-checks=off
timed rayon --runner=rayon
"$PY" -m apache_beam.runners.portability.local_job_service_main --port 0 --port_file "$OUT/port" >/dev/null 2>&1 &
SERVICE=$!
until [[ -s "$OUT/port" ]]; do sleep 0.2; done
sleep 1
before=$(cpu $SERVICE)
timed portable-python --runner=portable --job-endpoint="localhost:$(sed 's/.*://' "$OUT/port")"
echo "  Beam Python job service CPU during the job: $(echo "scale=2; ($(cpu $SERVICE) - $before) / $TICKS" | bc)s"
kill $SERVICE
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PRISM" -job_port "$PORT" -serve_http=false -log_level warn >/dev/null 2>&1 &
PRISM_PID=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null; do sleep 0.2; done
before=$(cpu $PRISM_PID)
timed portable-prism --runner=portable --job-endpoint="localhost:$PORT"
echo "  Prism CPU during the job: $(echo "scale=2; ($(cpu $PRISM_PID) - $before) / $TICKS" | bc)s, peak RSS $(awk '/VmHWM/{print $2}' /proc/$PRISM_PID/status)kB"
kill $PRISM_PID
for r in rayon portable-python portable-prism; do
    cmp -s <(cat "$OUT"/direct/counts* | sort) <(cat "$OUT/$r"/counts* | sort) && echo "$r: output identical to direct" || { echo "$r: OUTPUT DIFFERS"; exit 1; }
done
