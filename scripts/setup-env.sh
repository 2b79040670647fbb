# Shared set-up for scripts/test and scripts/build (sourced, not run). Installs only what is
# missing, so a warm machine starts at once:
#   - a virtual environment in .venv (or $CHIPKNIT_VENV) with the project installed editable
#     from pyproject.toml, reinstalled when pyproject.toml changes;
#   - with `need_simulators`: Debian's iverilog (Icarus), liblz4-dev (FST waves from
#     Verilator), ccache (fast Verilator rebuilds) and gtkwave (fst2vcd, and the viewer).
set -euo pipefail
CHIPKNIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHIPKNIT_VENV=${CHIPKNIT_VENV:-$CHIPKNIT_ROOT/.venv}

need_simulators() {
    local missing=()
    command -v iverilog >/dev/null || missing+=(iverilog)
    [ -e /usr/include/lz4.h ] || missing+=(liblz4-dev)
    command -v ccache >/dev/null || missing+=(ccache)
    command -v fst2vcd >/dev/null || missing+=(gtkwave)
    command -v g++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    if [ ${#missing[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        echo "chipknit: installing Debian packages: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

need_python_env() {
    local python
    python=$(command -v python3.11 || command -v python3)
    if [ ! -x "$CHIPKNIT_VENV/bin/python" ]; then
        echo "chipknit: creating $CHIPKNIT_VENV"
        "$python" -m venv "$CHIPKNIT_VENV"
    fi
    local stamp="$CHIPKNIT_VENV/.chipknit-installed" want
    want=$(sha256sum < "$CHIPKNIT_ROOT/pyproject.toml" | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        echo "chipknit: installing Python packages from pyproject.toml"
        "$CHIPKNIT_VENV/bin/python" -m pip install -q --upgrade pip
        "$CHIPKNIT_VENV/bin/python" -m pip install -q -e "$CHIPKNIT_ROOT[dev]"
        echo "$want" > "$stamp"
    fi
    export PATH="$CHIPKNIT_VENV/bin:$PATH"
}
