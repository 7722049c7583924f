#!/usr/bin/env bash
# Renders the manager's status page in headless Chromium and checks the
# screenshot and the DOM (internal/statuspage TestStatusPageChromium).
# Installs Debian's chromium first when it is missing (needs root).
# KUMO_UI_SHOT=PATH keeps the screenshot.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && [ -z "${KUMO_CHROMIUM:-}" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-ui: chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
KUMO_UI_TEST=1 exec "${GO:-go}" test -count=1 -v -run 'TestStatusPageChromium' ./internal/statuspage/
