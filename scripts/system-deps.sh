#!/bin/sh
# Install the Debian packages the test suite drives for real, when missing.
set -e
need=""
[ -x /usr/bin/chromium ] || need="$need chromium"
command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] || need="$need postgresql"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
if [ -n "$need" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages:$need"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
