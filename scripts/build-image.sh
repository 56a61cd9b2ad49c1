#!/usr/bin/env bash
# Build the filterjob image from the Dockerfile and print its reference as the last line
# of stdout (everything else goes to stderr): localhost/filterjob:<version from pyproject.toml>.
#
# The engine: podman when it is installed, else docker when its daemon answers, else podman
# and runc are installed with apt-get. FILTERJOB_ENGINE=podman|docker chooses.
# The base image (the Dockerfile's PYTHON_IMAGE), FILTERJOB_BASE:
#   local   a Debian bookworm with Debian's python3, made here with debootstrap and imported
#           as localhost/filterjob-base:bookworm (reused when it exists), for machines that
#           reach no container registry. The default with podman.
#   public  the Dockerfile's default, python:3.11-slim-bookworm from Docker Hub. The default
#           with docker.
#   other   any image reference with CPython 3.11 on glibc 2.28 or later.
# The wheels come from scripts/make-wheelhouse.sh (hash-checked against requirements.lock,
# cached in ~/.cache/filterjob), so the build itself reaches no package index.
set -euo pipefail
cd "$(dirname "$0")/.."

LOCAL_BASE=localhost/filterjob-base:bookworm
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
image="localhost/filterjob:$version"
started=$SECONDS

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "build-image: neither podman nor a running docker here, and no apt-get to install podman:" \
      "install podman (with runc) or docker and run this again" >&2
    exit 1
  fi
  echo "build-image: installing $* (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

engine=${FILTERJOB_ENGINE:-}
if [[ -z $engine ]]; then
  if command -v podman >/dev/null; then
    engine=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  else
    engine=podman
  fi
fi
case "$engine" in
  podman)
    command -v podman >/dev/null && command -v runc >/dev/null || apt_install podman runc
    # runc, not crun (which fails on these hosts' hybrid cgroups), and rlimits below the
    # host's: the machine denies raising them, which a container's defaults would do.
    run=(podman --runtime runc --cgroup-manager cgroupfs)
    limits=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
    ;;
  docker)
    run=(docker)
    limits=()
    ;;
  *) echo "build-image: FILTERJOB_ENGINE must be podman or docker, got '$engine'" >&2; exit 2 ;;
esac

base=${FILTERJOB_BASE:-}
[[ -n $base ]] || { [[ $engine == podman ]] && base=local || base=public; }
case "$base" in
  public) base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile) ;;
  local)
    base=$LOCAL_BASE
    if ! "${run[@]}" image exists "$base" 2>/dev/null && ! "${run[@]}" image inspect "$base" >/dev/null 2>&1; then
      command -v debootstrap >/dev/null || apt_install debootstrap
      echo "build-image: making $base with debootstrap (about a minute)" >&2
      root=$(mktemp -d /tmp/filterjob-base.XXXXXX)
      trap 'rm -rf "$root"' EXIT
      debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" http://deb.debian.org/debian >&2
      tar -C "$root" -c . | "${run[@]}" import - "$base" >&2
      rm -rf "$root"
      trap - EXIT
    fi
    ;;
esac

# The wheelhouse is part of the build context (.dockerignore lets it through), made anew
# each time from the cache, so it holds exactly the lock's wheels and this tree's wheel.
scripts/make-wheelhouse.sh wheelhouse

echo "build-image: building $image on $base with $engine" >&2
"${run[@]}" build "${limits[@]}" --network host \
  --build-arg "PYTHON_IMAGE=$base" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --tag "$image" --file Dockerfile . >&2

size=$("${run[@]}" image inspect --format '{{.Size}}' "$image")
echo "build-image: $image, $((size / 1000000)) MB, built in $((SECONDS - started)) s" >&2
echo "$image"
