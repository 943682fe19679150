# Sourced by the other scripts: tool paths and a target dir kept between runs.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Clean clones (CI) reuse one build cache instead of rebuilding Leptos from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sockscope/target}"
