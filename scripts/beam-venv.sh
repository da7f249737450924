#!/usr/bin/env bash
# Makes sure a Python venv with apache-beam 2.77.0 exists (Beam Python's local job service, which
# the portable runner's tests start). The venv lives at $RUNNEL_BEAM_VENV (default
# /opt/beam-venv, where the tests look); it is created only when missing or of another version.
set -euo pipefail
VENV="${RUNNEL_BEAM_VENV:-/opt/beam-venv}"
VERSION=2.77.0
if [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c "import apache_beam, sys; sys.exit(apache_beam.__version__ != '$VERSION')" 2>/dev/null; then
    echo "apache-beam $VERSION present in $VENV"
    exit 0
fi
echo "creating $VENV with apache-beam $VERSION"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "apache-beam==$VERSION"
"$VENV/bin/python" -c "import apache_beam; print('apache-beam', apache_beam.__version__, 'installed in $VENV')"
