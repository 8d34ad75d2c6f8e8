#!/bin/sh
# Install the Debian packages the test suite drives for real (and gcc, which builds the
# C accelerator at install), when missing.
# With arguments, only those commands (each a Debian package of the same name),
# e.g. `system-deps.sh valgrind` for `make bench-instructions`.
set -e
need=""
if [ "$#" -gt 0 ]; then
  for extra in "$@"; do
    command -v "$extra" >/dev/null 2>&1 || need="$need $extra"
  done
else
  [ -x /usr/bin/chromium ] || need="$need chromium"
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] || need="$need postgresql"
  command -v wrk >/dev/null 2>&1 || need="$need wrk"
  command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
  # the C accelerator of the quick pass, compiled at install (hatch_build.py)
  command -v gcc >/dev/null 2>&1 || need="$need gcc"
fi
if [ -n "$need" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages:$need"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
