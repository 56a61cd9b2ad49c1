# Sourced by tools/k8s/pin.sh and scripts/ensure-k8s-binaries.sh: where the Go tooling keeps its
# downloads, build cache and the built binaries. Everything lives outside git, under one folder that
# can be deleted to start over (FILTERJOB_CACHE overrides it).
FILTERJOB_CACHE="${FILTERJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/filterjob}"
# A module cache and build cache of their own: the Kubernetes tree is large, and keeping it apart
# makes its download size measurable and removable without touching the user's Go caches.
export GOMODCACHE="$FILTERJOB_CACHE/go/mod"
export GOCACHE="$FILTERJOB_CACHE/go/build"
# Use the Go on PATH; a release that needs a newer Go says so instead of fetching a toolchain
# behind the user's back (export GOTOOLCHAIN=goX.Y.Z to allow one, see tools/k8s/README.md).
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# Upstream builds these binaries without cgo; static binaries also run on any machine of the kind.
export CGO_ENABLED=0
