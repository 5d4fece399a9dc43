#!/usr/bin/env bash
# The README screenshot: Neovim with ghost text in a 90x18 tmux pane, captured with its colours
# (tmux capture-pane -e) and drawn to a PNG by render.py. Called by test/run with HOME_DIR,
# OUT_PNG, NVIM_BIN, VENV_PYTHON, TEST_DIR and the server and model variables set.
set -euo pipefail

export XDG_CONFIG_HOME="$HOME_DIR/config" XDG_DATA_HOME="$HOME_DIR/data" XDG_STATE_HOME="$HOME_DIR/state"
export XDG_CACHE_HOME="$HOME_DIR/cache" XDG_RUNTIME_DIR="$HOME_DIR/run" MARKERS="$HOME_DIR/markers"
mkdir -p "$MARKERS" "$HOME_DIR/demo" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
sock="$HOME_DIR/tmux.sock"
file="$HOME_DIR/demo/geometry.py"
cat >"$file" <<'PY'
import math


def distance(p, q):
    """Return the Euclidean distance between points p and q."""
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)


def is_prime(n):
    """Return True if n is a prime number."""
PY
printf '    \n' >>"$file"
wait_for() { # FILE SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}
cleanup() { tmux -S "$sock" kill-server 2>/dev/null || true; }
trap cleanup EXIT

tmux -S "$sock" -f /dev/null new-session -d -x 90 -y 18 \
    -e COLORTERM=truecolor -e "PATH=$PATH" \
    "'$NVIM_BIN' -u '$TEST_DIR/screenshot_init.lua' -i NONE '$file'"
tmux -S "$sock" set-option -g default-terminal tmux-256color
tmux -S "$sock" set-option -ga terminal-features ",*:RGB"
tmux -S "$sock" set-option -g status off
wait_for "$MARKERS/ready" 120
# Real keys, as typed: to the empty body of is_prime, append (entering insert mode asks).
tmux -S "$sock" send-keys 11G A
wait_for "$MARKERS/ghost" 120
sleep 0.5
tmux -S "$sock" capture-pane -e -p -t 0 >"$HOME_DIR/pane.ans"
tmux -S "$sock" capture-pane -p -t 0 >"$HOME_DIR/pane.txt"
cursor="$(tmux -S "$sock" display-message -p -t 0 '#{cursor_x},#{cursor_y}')"
cat "$HOME_DIR/pane.txt"
ghost="$(head -n1 "$MARKERS/ghost")"
grep -qF "    $ghost" "$HOME_DIR/pane.txt" || { echo "the ghost text '$ghost' is not on screen" >&2; exit 1; }
"$VENV_PYTHON" "$TEST_DIR/render.py" "$HOME_DIR/pane.ans" "$OUT_PNG" --expect "$ghost" --cursor "$cursor"
