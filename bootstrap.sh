#!/usr/bin/env bash
# One entry point for a fresh Debian machine: installs the packages AllData needs when they
# are missing, configures and builds, then does what you ask.
#
#   ./bootstrap.sh dev [alldata dev options]  build, then run a local broker setup on loopback
#                                             (data under ./alldata-dev; Ctrl-C stops it)
#   ./bootstrap.sh test [meson test options]  build, then run the whole test suite; without
#                                             options also a second build with ASan and
#                                             UBSan (build-sanitize/, warnings are errors)
#                                             that runs the unit, integration and fuzz
#                                             corpus suites (ALLDATA_SANITIZE=0 skips it)
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

# Prints "N passed, N failed" from meson's log (of build folder $1) so any CI reads the
# outcome the same way.
summarize() {
  python3 - "$1/meson-logs/testlog.json" <<'PY' || true
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

# The sanitizer pass: clang-14 with ASan and UBSan at -O0 (of everything tried, the one
# that compiles fast enough for CI; its tests mostly wait on I/O), every warning an error,
# only the executables of the suites it runs; a sanitizer report fails the test that
# caused it. UBSan's `function` check is off: clang 14 cannot compile C++20 coroutines
# with it.
sanitize_dir=${ALLDATA_SANITIZE_DIR:-build-sanitize}
sanitize_suites=(unit integration fuzz)
sanitize() {
  local packages=(clang-14 libclang-rt-14-dev)  # install_missing sees this list
  install_missing
  if [ ! -f "$sanitize_dir/build.ninja" ]; then
    CC=clang-14 CXX=clang++-14 meson setup "$sanitize_dir" --buildtype=plain \
      -Dcpp_args="-O0 -fno-omit-frame-pointer -fno-sanitize=function" \
      -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true >/dev/null
  fi
  local targets
  targets=$(meson introspect --tests "$sanitize_dir" | python3 -c '
import json, os, sys
wanted = {"alldata:" + s for s in sys.argv[2:]}
exes = {os.path.relpath(t["cmd"][0], sys.argv[1]) for t in json.load(sys.stdin) if wanted & set(t["suite"])}
print(" ".join(sorted(exes)))' "$(cd "$sanitize_dir" && pwd)" "${sanitize_suites[@]}")
  # Some integration tests run the `alldata` tool (and it the broker) as well.
  # shellcheck disable=SC2086
  ninja -C "$sanitize_dir" $targets client/alldata broker/alldata-broker
  local suites=()
  for s in "${sanitize_suites[@]}"; do suites+=(--suite "$s"); done
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    meson test -C "$sanitize_dir" --no-rebuild --print-errorlogs --timeout-multiplier 3 "${suites[@]}"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  build) build ;;
  test)
    build
    status=0
    meson test -C "$build_dir" --print-errorlogs "$@" || status=$?
    summarize "$build_dir"
    if [ $# -eq 0 ] && [ "${ALLDATA_SANITIZE:-1}" != 0 ]; then
      echo "bootstrap: the unit, integration and fuzz corpus suites again under ASan and UBSan" >&2
      sanitize || status=$?
      echo -n "sanitizer build: "
      summarize "$sanitize_dir"
    fi
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
