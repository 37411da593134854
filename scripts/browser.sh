#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives it through its executable path; Playwright's
# own browser download is not used). Idempotent: does nothing when /usr/bin/chromium exists.
set -euo pipefail
CHROMIUM="${SHADOWLAB_CHROMIUM:-/usr/bin/chromium}"
if [[ -x $CHROMIUM ]]; then
  echo "browser: chromium present ($("$CHROMIUM" --version 2>/dev/null | head -1))"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "browser: error: $CHROMIUM is missing; install Debian's chromium package (apt-get install chromium)" >&2
  exit 1
fi
echo "browser: installing Debian's chromium (once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "browser: $("$CHROMIUM" --version | head -1)"
