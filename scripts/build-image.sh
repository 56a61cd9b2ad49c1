#!/usr/bin/env bash
# Build the filterjob image from the Dockerfile and print its reference as the last line
# of stdout (everything else goes to stderr).
#
# Usage: scripts/build-image.sh [--engine podman|docker] [--base local|public|IMAGE] [--tag REF]
#   --tag     the image reference (default: localhost/filterjob:<version from pyproject.toml>).
#   --engine  (or FILTERJOB_ENGINE) podman or docker. Default: podman when it is installed,
#             else docker when its daemon answers, else podman and runc installed with apt-get.
#   --base    (or FILTERJOB_BASE) the base image, the Dockerfile's PYTHON_IMAGE:
#     local   a Debian bookworm with Debian's python3, made here with debootstrap and imported
#             as localhost/filterjob-base:bookworm (reused when it exists), for machines that
#             reach no container registry. The default with podman.
#     public  the Dockerfile's default, python:3.11-slim-bookworm from Docker Hub. The default
#             with docker.
#     IMAGE   any image reference with CPython 3.11 on glibc 2.28 or later.
# The wheels come from scripts/make-wheelhouse.sh (hash-checked against requirements.lock,
# cached in ~/.cache/filterjob), so the build itself reaches no package index.
set -euo pipefail
cd "$(dirname "$0")/.."

LOCAL_BASE=localhost/filterjob-base:bookworm
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
image="localhost/filterjob:$version"
engine=${FILTERJOB_ENGINE:-}
base=${FILTERJOB_BASE:-}
started=$SECONDS

usage="usage: scripts/build-image.sh [--engine podman|docker] [--base local|public|IMAGE] [--tag REF]"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --engine | --base | --tag)
      [[ $# -ge 2 && -n $2 ]] || { echo "build-image: $1 needs a value; $usage" >&2; exit 2; }
      case "$1" in --engine) engine=$2 ;; --base) base=$2 ;; --tag) image=$2 ;; esac
      shift 2
      ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) echo "build-image: unknown argument '$1'; $usage" >&2; exit 2 ;;
  esac
done

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
    docker info >/dev/null 2>&1 || { echo "build-image: docker's daemon does not answer (docker info fails)" >&2; exit 1; }
    run=(docker)
    limits=()
    ;;
  *) echo "build-image: the engine must be podman or docker, got '$engine'" >&2; exit 2 ;;
esac

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
      # The environment the python image has (an imported tree has none): the standard PATH
      # and a UTF-8 locale, which Debian's C.UTF-8 provides without any locale package.
      tar -C "$root" -c . | "${run[@]}" import \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" - "$base" >&2
      rm -rf "$root"
      trap - EXIT
    fi
    ;;
esac

# The wheelhouse is part of the build context (.dockerignore lets it through), made anew
# each time from the cache, so it holds exactly the lock's wheels and this tree's wheel.
scripts/make-wheelhouse.sh wheelhouse

# The labels are given here too, not only as build arguments: podman's layer cache takes the
# Dockerfile's LABEL step as it was written, so a cached step would keep an older revision.
previous=$("${run[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
echo "build-image: building $image on $base with $engine" >&2
"${run[@]}" build "${limits[@]}" --network host \
  --build-arg "PYTHON_IMAGE=$base" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --tag "$image" --file Dockerfile . >&2

size=$("${run[@]}" image inspect --format '{{.Size}}' "$image")
# The image the tag named before (another revision) would stay behind untagged at every
# build; it goes unless a container still uses it. Its layers, shared with this one, stay.
current=$("${run[@]}" image inspect --format '{{.Id}}' "$image")
if [[ -n $previous && $previous != "$current" ]]; then
  "${run[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
echo "build-image: $image, $((size / 1000000)) MB, built in $((SECONDS - started)) s" >&2
echo "$image"
