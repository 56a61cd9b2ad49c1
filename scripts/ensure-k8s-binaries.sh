#!/usr/bin/env bash
# Build the control-plane binaries the tests run (kube-apiserver, kube-controller-manager,
# kube-scheduler and etcd) if they are not built yet, and print where they are as a PATH fragment:
#   export PATH="$(scripts/ensure-k8s-binaries.sh):$PATH"
# With --no-build it only prints them if everything is built, and otherwise says what is missing
# (exit 1): for tests that use the binaries where they are but must not start a long build.
#
# Versions are those pinned in tools/k8s/go.mod and tools/k8s/etcd/go.mod (see tools/k8s/README.md);
# sources come from the Go module proxy and are built with the Go on PATH, never committed. The
# binaries go to ${XDG_CACHE_HOME:-$HOME/.cache}/filterjob/{k8s,etcd}/VERSION/, one folder per version,
# so a bump builds beside the old ones. Idempotent: with everything there it only prints the folders.
# Atomic: each binary is built under a temporary name, checked to report its pinned version, then
# renamed, so an interrupted build never leaves a half binary under a real name. Concurrent runs
# (other worktrees share the cache) wait for each other instead of building twice.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/k8s/env.sh
source tools/k8s/env.sh

say() { echo "ensure-k8s-binaries: $*" >&2; }
no_build=false
case "${1:-}" in
  "") ;;
  --no-build) no_build=true ;;
  *) say "unknown argument '$1'; usage: $0 [--no-build]"; exit 2 ;;
esac
command -v go >/dev/null || { say "needs Go on PATH to build the pinned Kubernetes and etcd; install Go $(sed -n 's/^go //p' tools/k8s/go.mod) or newer"; exit 1; }

pinned() {  # pinned GO.MOD MODULE: the version GO.MOD requires MODULE at
  local json version
  if ! json="$(go mod edit -json "$1")"; then
    say "cannot read $1 (go said why, above); restore it from git or pin again with tools/k8s/pin.sh"
    exit 1
  fi
  version="$(python3 -c '
import json, sys
mod = json.load(sys.stdin)
print(next((r["Version"] for r in mod.get("Require") or [] if r["Path"] == sys.argv[1]), ""))' "$2" <<<"$json")"
  if [[ -z "$version" ]]; then
    say "$1 pins no $2; restore it from git or pin one with tools/k8s/pin.sh"
    exit 1
  fi
  echo "$version"
}
k8s_version="$(pinned tools/k8s/go.mod k8s.io/kubernetes)"
etcd_version="$(pinned tools/k8s/etcd/go.mod go.etcd.io/etcd/server/v3)"
k8s_dir="$FILTERJOB_CACHE/k8s/$k8s_version"
etcd_dir="$FILTERJOB_CACHE/etcd/$etcd_version"
k8s_binaries=(kube-apiserver kube-controller-manager kube-scheduler)

missing() {  # the paths in $@ that are not executable files yet
  local path
  for path in "$@"; do [[ -f "$path" && -x "$path" ]] || echo "$path"; done
}
all_paths=("${k8s_binaries[@]/#/$k8s_dir/}" "$etcd_dir/etcd")
not_built="$(missing "${all_paths[@]}")"
if [[ -z "$not_built" ]]; then
  echo "$k8s_dir:$etcd_dir"
  exit 0
fi
if $no_build; then
  say "not built yet: $(echo "$not_built" | tr '\n' ' ')- run scripts/ensure-k8s-binaries.sh to build them"
  exit 1
fi

mkdir -p "$k8s_dir" "$etcd_dir"
exec 9>"$FILTERJOB_CACHE/build.lock"
if ! flock -n 9; then
  say "another build of the same cache is running; waiting for it"
  flock 9
fi
# Holding the lock, nobody else is building: whatever temporary folder is left was interrupted.
rm -rf "$k8s_dir"/.build.* "$etcd_dir"/.build.*

scratch="" builder=""
# The build and everything it started, leaves first, then waited for: when this script has
# exited, no compiler or linker of its build is left running.
stop_tree() {
  local child
  for child in $(pgrep -P "$1" || true); do stop_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  if [[ -n "$builder" ]]; then
    stop_tree "$builder"
    wait "$builder" 2>/dev/null || true
  fi
  [[ -z "$scratch" ]] || rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# build MODULE_DIR OUT_DIR OUTPUT EXPECTED_VERSION_LINE GO_BUILD_ARGS...: go build -o into a
# temporary folder of OUT_DIR (the same file system, so the final rename is atomic), check what it
# built, then rename it into OUT_DIR. OUTPUT is a file name, or "" for one binary per package.
build() {
  local module_dir="$1" out_dir="$2" output="$3" expected="$4" name
  shift 4
  scratch="$(mktemp -d "$out_dir/.build.XXXXXX")"
  # Nice and at most two jobs: the machine's two cores are shared with whoever else is working.
  # In the background, and waited for, so an interrupt stops the build at once (see cleanup).
  (cd "$module_dir" && exec nice -n 19 go build -p 2 -trimpath -o "$scratch/$output" "$@") &
  builder=$!
  wait "$builder" || { builder=""; say "go build failed (see above); nothing was installed"; exit 1; }
  builder=""
  for name in "$scratch"/*; do
    if ! "$name" --version 2>&1 | grep -qxF "$expected"; then
      say "${name##*/} --version does not report '$expected' but: $("$name" --version 2>&1 | head -1)"
      exit 1
    fi
  done
  for name in "$scratch"/*; do mv -fT "$name" "$out_dir/${name##*/}"; done
  rm -rf "$scratch"
  scratch=""
}

mapfile -t todo < <(missing "${k8s_binaries[@]/#/$k8s_dir/}")
if [[ ${#todo[@]} -gt 0 ]]; then
  minor="${k8s_version#v1.}"
  minor="${minor%%.*}"
  # Without the stamp the servers report v0.0.0-master and charts with a kubeVersion refuse them.
  stamp=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  say "building Kubernetes $k8s_version: ${todo[*]##*/} (the first build takes long)"
  build tools/k8s "$k8s_dir" "" "Kubernetes $k8s_version" -ldflags "-s -w$stamp" \
    "${todo[@]/#$k8s_dir\//k8s.io/kubernetes/cmd/}"
fi
if [[ -n "$(missing "$etcd_dir/etcd")" ]]; then
  say "building etcd $etcd_version"
  # etcd's own version is a constant of its source; nothing to stamp.
  build tools/k8s/etcd "$etcd_dir" etcd "etcd Version: ${etcd_version#v}" -ldflags "-s -w" go.etcd.io/etcd/server/v3
fi
echo "$k8s_dir:$etcd_dir"
