#!/bin/sh
# Create the virtualenv `make` uses: check the Python version first; where `python -m venv` cannot
# (Debian/Ubuntu without the python3-venv package have no ensurepip), fall back to PyPI's virtualenv.
set -eu
python=${1:-python3}
venv=${2:-.venv}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "etl-doctor needs Python 3.11 or newer; '$python' is $("$python" -V 2>&1 | head -n 1)." >&2
    echo "Run make with PYTHON=python3.12 (for example)." >&2
    exit 1
fi
if "$python" -m venv "$venv" 2>"$venv.err"; then
    rm -f "$venv.err"
    exit 0
fi
echo "'$python -m venv' failed: $(tail -n 1 "$venv.err")" >&2
echo "(on Debian/Ubuntu: apt-get install python3-venv); trying PyPI's virtualenv instead" >&2
rm -rf "$venv" "$venv.err"
"$python" -m pip install --quiet --user virtualenv \
    || "$python" -m pip install --quiet --user --break-system-packages virtualenv
"$python" -m virtualenv --quiet "$venv"
