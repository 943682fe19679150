# Sourced by the other scripts: tool paths, a target dir kept between runs, and helpers.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Clean clones (CI) reuse one build cache instead of rebuilding Leptos from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sockscope/target}"
# The built dashboard (scripts/build) and the release binary that carries it.
export SOCKSCOPE_SITE="$CARGO_TARGET_DIR/site"
export SOCKSCOPE_RELEASE_BIN="$CARGO_TARGET_DIR/release/sockscope"

say() { printf '\033[1m%s:\033[0m %s\n' "$(basename "$0")" "$*"; }
die() { printf '\033[1;31m%s:\033[0m %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo otherwise. Environment
# settings go through `env` (never `$SUDO VAR=x cmd`: with no sudo the assignment would become
# the command name).
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    die "'$*' needs root: run this script as root, or as a user with password-less sudo, or run that command yourself first"
  fi
}

# Installs Debian packages (non-interactively) unless every one of them is installed already.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null ||
    die "needs the Debian packages ${missing[*]}, and this machine has no apt-get: install them with your package manager"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
