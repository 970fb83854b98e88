#!/bin/sh
# Install Debian's chromium for the browser tests when it is missing (Playwright's own browser
# download cannot work here; its 1.64 protocol matches this chromium). Needs root or sudo;
# without either it says what to run and exits 0, so the browser tests then skip with a reason.
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "chromium missing and no root: run 'apt-get install -y chromium' as root" >&2
    echo "(the browser tests skip until $CHROMIUM exists)" >&2
    exit 0
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
"$CHROMIUM" --version
