#!/usr/bin/env bash
# A Kubernetes cluster on this machine for a person, the same the tests start:
#   scripts/dev-cluster.sh up       start it in the background; the last line is `export KUBECONFIG=...`
#   scripts/dev-cluster.sh up --containers   the same, pods run as podman containers of their images
#   scripts/dev-cluster.sh status   what runs, with pids, ports and logs (exit 1 if something is down)
#   scripts/dev-cluster.sh down     stop everything `up` started and remove its state
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built by
# scripts/ensure-k8s-binaries.sh if missing: minutes the first time) on free loopback ports,
# the kubelet harness (tests/helpers/kubelet.py, when it is there) as node `dev-node`, and
# RabbitMQ if it is not running yet (scripts/ensure-rabbitmq.sh). helm and kubectl go to .venv/bin.
# State (certificates, etcd data, logs, pids) is in .dev-cluster/, or FILTERJOB_DEV_CLUSTER.
# Both `up` and `down` are idempotent: `up` on a running cluster changes nothing, `up` after a
# crash or reboot starts it again on the same data, `down` with nothing running does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "dev-cluster: $*" >&2; }
state="${FILTERJOB_DEV_CLUSTER:-$PWD/.dev-cluster}"
python=.venv/bin/python
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
usage="usage: $0 up|down|status (up --containers: pods as podman containers of their images)"

if [[ ! -x $python ]]; then
  say "no .venv here; make it first: python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
  exit 2
fi
case "${1:-}" in
  up)
    [[ $# -eq 1 || ( $# -eq 2 && $2 == --containers ) ]] || { say "$usage"; exit 2; }
    if ! port_open 5672; then
      scripts/ensure-rabbitmq.sh
      mkdir -p "$state"
      touch "$state/rabbitmq-started"  # so that `down` stops it again, and only then
    fi
    scripts/ensure-helm.sh >/dev/null
    exec "$python" -m tests.helpers.devcluster up --dir "$state" "${@:2}"
    ;;
  down)
    [[ $# -eq 1 ]] || { say "$usage"; exit 2; }
    started_rabbitmq=false
    [[ -e $state/rabbitmq-started ]] && started_rabbitmq=true
    "$python" -m tests.helpers.devcluster down --dir "$state"
    # Left by an `up` that failed before it recorded anything: nothing runs from it any more.
    if [[ -e $state/rabbitmq-started ]]; then rm -rf "$state"; fi
    if $started_rabbitmq && port_open 5672; then
      say "stopping the RabbitMQ that up started"
      rabbitmqctl stop >/dev/null
    fi
    ;;
  status)
    [[ $# -eq 1 ]] || { say "$usage"; exit 2; }
    status=0
    "$python" -m tests.helpers.devcluster status --dir "$state" || status=$?
    if port_open 5672; then echo "rabbitmq                 running      port 5672"; else echo "rabbitmq                 not running"; fi
    exit "$status"
    ;;
  *)
    say "$usage"
    exit 2
    ;;
esac
