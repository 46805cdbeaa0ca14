# Sourced by bin/demo and bin/test: make .venv (Python 3.11) and install the project into it once per
# change of pyproject.toml. $1 = "" (run the product) or "dev" (also the test tools).
set -euo pipefail
extra="${1:-}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11 or newer is needed"'
  "$python" -m venv .venv
fi
hash="$(sha1sum pyproject.toml | cut -c1-12)"
stamp=".venv/.installed-${extra:-run}-$hash"
# The test tools' install holds the product's too: bin/manage and bin/demo need nothing more after bin/test.
if [ ! -f "$stamp" ] && { [ -n "$extra" ] || [ ! -f ".venv/.installed-dev-$hash" ]; }; then
  echo "Installing the project into .venv (once) ..."
  target="."; [ -n "$extra" ] && target=".[$extra]"
  if ! { .venv/bin/python -m pip install --quiet --upgrade pip && .venv/bin/python -m pip install --quiet -e "$target"; } \
      > .venv/pip.log 2>&1; then
    cat .venv/pip.log >&2; echo "Installing the project failed (log above)." >&2; exit 1
  fi
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
