#!/usr/bin/env bash
# Pin the control-plane binaries that scripts/ensure-k8s-binaries.sh builds to a release:
#   tools/k8s/pin.sh kubernetes v1.X.Y   rewrites tools/k8s/go.mod (staging replaces, godebug) and go.sum
#   tools/k8s/pin.sh etcd v3.6.Z         rewrites tools/k8s/etcd/go.mod and go.sum
# Commit both files afterwards; the next ensure-k8s-binaries.sh run builds the new versions.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/k8s/env.sh
source "$here/env.sh"

usage() { echo "usage: $0 kubernetes v1.X.Y | etcd v3.X.Y" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
what="$1" version="$2"

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Remove what a previous pin put there, so a staging module dropped by the new release goes too.
drop_flags() {
  go mod edit -json | python3 -c '
import json, sys
mod = json.load(sys.stdin)
for r in mod.get("Replace") or []:
    print("-dropreplace=" + r["Old"]["Path"])
for e in mod.get("Exclude") or []:
    print("-dropexclude=" + e["Path"] + "@" + e["Version"])
for g in mod.get("GoDebug") or []:
    print("-dropgodebug=" + g["Key"])
'
}

# A new module starts at a low go line; the pinned release raises it to the Go it needs, not to
# whichever Go happened to run this script.
init_module() { go mod init "$1" 2>/dev/null && go mod edit -go=1.22; }

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

case "$what" in
  kubernetes)
    cd "$here"
    [[ -f go.mod ]] || init_module filterjob/tools/k8s
    # Only the release's go.mod is fetched here (not its source), to read its replaces and godebug.
    # Queried from outside any module: inside this one, go would first want the old pins resolved.
    if ! release="$(cd "$scratch" && go list -m -json "k8s.io/kubernetes@$version")"; then
      echo "pin: no Kubernetes release $version on the module proxy (go said why, above);" \
        "the releases it has: go list -m -versions k8s.io/kubernetes" >&2
      exit 2
    fi
    release_mod="$(json_field GoMod <<<"$release")"
    # Through variables, so a refusal of pin_replaces.py stops the script before go.mod is touched.
    flag_lines="$(go mod edit -json "$release_mod" | python3 "$here/pin_replaces.py" "$version")"
    drop_lines="$(drop_flags)"
    mapfile -t flags <<<"$flag_lines"
    mapfile -t drops < <(printf '%s' "$drop_lines" | grep .)
    [[ ${#drops[@]} -eq 0 ]] || go mod edit "${drops[@]}"
    go mod edit "${flags[@]}" \
      -tool=k8s.io/kubernetes/cmd/kube-apiserver \
      -tool=k8s.io/kubernetes/cmd/kube-controller-manager \
      -tool=k8s.io/kubernetes/cmd/kube-scheduler
    ;;
  etcd)
    cd "$here/etcd"
    [[ -f go.mod ]] || init_module filterjob/tools/k8s/etcd
    go get -tool "go.etcd.io/etcd/server/v3@$version"
    ;;
  *) usage ;;
esac
nice -n 19 go mod tidy
echo "pinned $what $version in $PWD/go.mod" >&2
