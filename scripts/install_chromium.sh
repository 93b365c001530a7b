#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the UI screenshot test
# (reputation_pipeline_tests/test_ui.py). Idempotent: does nothing when
# /usr/bin/chromium exists; otherwise one `apt-get update` and one
# `apt-get install -y chromium` (as root, or through sudo when available).
# Exit status: 0 when /usr/bin/chromium is usable afterwards, 1 otherwise.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: apt-get not found (not a Debian/Ubuntu system); install chromium yourself" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_chromium: not root and no passwordless sudo; cannot install chromium" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
if [ -x "$CHROMIUM" ]; then
  "$CHROMIUM" --version >&2 || true
  exit 0
fi
echo "install_chromium: apt-get finished but $CHROMIUM is still missing" >&2
exit 1
