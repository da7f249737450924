#!/usr/bin/env bash
# Installs Prism, Beam's Go portable runner (the job server the portable runner's streaming-capable
# tests use), with `go install` from the Go module proxy, unless it is already there. Where it
# goes: $RUNNEL_PRISM if set, else Go's bin directory (`go env GOBIN`, else `$(go env GOPATH)/bin`).
set -euo pipefail
BEAM_GO_VERSION=v2.77.0
if [[ -n "${RUNNEL_PRISM:-}" ]]; then
    target="$RUNNEL_PRISM"
else
    gobin="$(go env GOBIN)"
    target="${gobin:-$(go env GOPATH)/bin}/prism"
fi
if [[ -x "$target" ]]; then
    echo "prism: $target is there"
    exit 0
fi
echo "prism: installing github.com/apache/beam/sdks/v2/go/cmd/prism@$BEAM_GO_VERSION into $(dirname "$target")"
GOBIN="$(dirname "$target")" go install "github.com/apache/beam/sdks/v2/go/cmd/prism@$BEAM_GO_VERSION"
if [[ "$(basename "$target")" != prism ]]; then
    mv "$(dirname "$target")/prism" "$target"
fi
echo "prism: installed $target"
