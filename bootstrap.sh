#!/usr/bin/env bash
# One entry point for a fresh Debian machine: installs the packages AllData needs when they
# are missing, configures and builds, then does what you ask.
#
#   ./bootstrap.sh dev [alldata dev options]  build, then run a local broker setup on loopback
#                                             (data under ./alldata-dev; Ctrl-C stops it)
#   ./bootstrap.sh test [meson test options]  build, then run the whole test suite
#   ./bootstrap.sh build                      install packages and build only
#
# The programs are linked into /usr/local/bin (when writable) so `alldata` and
# `alldata-broker` work from any folder; otherwise use build/client/alldata.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
build_dir=${ALLDATA_BUILD_DIR:-build}

packages=(g++ meson ninja-build pkg-config capnproto libcapnp-dev librocksdb-dev libspdlog-dev
          libboost1.81-dev libgtest-dev libgmock-dev libcli11-dev libxxhash-dev)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "bootstrap: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  install_missing
  if [ ! -f "$build_dir/build.ninja" ]; then
    meson setup "$build_dir" --buildtype=release >/dev/null
  fi
  ninja -C "$build_dir"
  if [ -w /usr/local/bin ]; then
    ln -sf "$root/$build_dir/client/alldata" /usr/local/bin/alldata
    ln -sf "$root/$build_dir/broker/alldata-broker" /usr/local/bin/alldata-broker
  else
    echo "bootstrap: /usr/local/bin is not writable; put $root/$build_dir/client on your PATH" >&2
  fi
}

# Prints "N passed, N failed" from meson's log so any CI reads the outcome the same way.
summarize() {
  python3 - "$build_dir/meson-logs/testlog.json" <<'PY' || true
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): passed += 1
    elif r == "SKIP": skipped += 1
    else: failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  build) build ;;
  test)
    build
    status=0
    meson test -C "$build_dir" --print-errorlogs "$@" || status=$?
    summarize
    exit $status
    ;;
  dev)
    build
    exec "$build_dir/client/alldata" dev "$@"
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
