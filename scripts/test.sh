#!/usr/bin/env bash
# The project's test command (README, and .ci/run after its lint steps): makes sure what the tests
# need is installed, then runs every test of the workspace.
# - scripts/beam-venv.sh: a Python venv with apache-beam==2.77.0 (Beam Python's local job service,
#   which the portable runner's tests start), at $RUNNEL_BEAM_VENV, default /opt/beam-venv;
#   created only when missing (python3 -m venv + pip, about 480 MB from PyPI, ~40 s).
# - scripts/prism.sh: Prism, Beam's Go portable runner (`go install` of
#   github.com/apache/beam/sdks/v2/go/cmd/prism@v2.77.0 from the Go module proxy; a 66 MB binary,
#   about 4 minutes to build on 2 cores), into Go's bin directory or $RUNNEL_PRISM; only when
#   missing.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p runnel-io`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/beam-venv.sh
bash scripts/prism.sh
cargo test --workspace --locked "$@"
