# Shared by scripts/up and scripts/test: make sure .venv exists and holds this checkout, installed.
# Sourced, not run. Re-installs only when pyproject.toml changed (or the extras asked for did).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${1:-}"

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "fleetplane needs Python 3.11 or newer; set PYTHON=/path/to/python3.11 or install it" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(find_python)"
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    # Debian and Ubuntu ship venv separately.
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "installing python3-venv ..." >&2
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV"; "$PY" -m venv "$VENV"
    else
      echo "could not create $VENV: install your distribution's python3-venv package" >&2; exit 1
    fi
  fi
fi

# The local runtime's sandboxes: bubblewrap (tier bwrap) and gVisor (Debian package runsc, tier gvisor).
# Installed when root and missing; otherwise `fleetplane doctor` says which tiers work without them.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  MISSING=""
  command -v bwrap >/dev/null 2>&1 || MISSING="$MISSING bubblewrap"
  command -v runsc >/dev/null 2>&1 || MISSING="$MISSING runsc"
  if [ -n "$MISSING" ]; then
    echo "installing sandboxes:$MISSING ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $MISSING >/dev/null; } ||
      echo "could not install$MISSING: the tiers that need them will be unavailable" >&2
  fi
fi

STAMP="$VENV/.fleetplane-installed"
WANT="$( (cat "$ROOT/pyproject.toml"; echo "extras=$EXTRAS") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing fleetplane${EXTRAS:+[$EXTRAS]} into .venv ..." >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  echo "$WANT" > "$STAMP"
fi
