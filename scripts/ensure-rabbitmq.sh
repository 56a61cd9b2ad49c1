#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers AMQP on 127.0.0.1:5672 with the management API on
# 15672: install Debian's rabbitmq-server when it is missing, start it when it is not
# running, enable the management plugin. Tests that need the broker use it for real.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# An open port is not a working broker: a node can accept TCP connections and never send
# the AMQP greeting. Send the protocol header and wait (bounded) for the first byte back.
speaks_amqp() {
  timeout -s KILL 10 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/5672 || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    IFS= read -r -n 1 -t 8 -u 3 _' 2>/dev/null
}

# rabbitmqctl can outlive its own --timeout when the node is wedged; never let it hang CI.
ctl() { timeout -s KILL 90 rabbitmqctl "$@"; }

if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null; then
    if ! command -v apt-get >/dev/null; then
      echo "RabbitMQ is not running on 127.0.0.1:5672 and cannot be installed here (no apt-get):" \
        "install rabbitmq-server (3.10 or later) and start it" >&2
      exit 1
    fi
    echo "installing RabbitMQ (Debian's rabbitmq-server)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # A new machine may have empty package lists; the package's post-install script
    # starts nothing without an init system, so the broker is started below.
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
  fi
  # The broker started here exists for the tests, so it gets a fresh data directory each
  # time: the default one may hold hundreds of queues from earlier runs (or an unclean
  # shutdown), and a node recovering them has been seen to accept connections yet never
  # answer them. The package's own data in /var/lib/rabbitmq is left untouched.
  RABBITMQ_MNESIA_BASE=$(mktemp -d /tmp/filterjob-rabbitmq.XXXXXX)
  export RABBITMQ_MNESIA_BASE
  chown rabbitmq: "$RABBITMQ_MNESIA_BASE" 2>/dev/null || true
  echo "starting RabbitMQ (data in $RABBITMQ_MNESIA_BASE)" >&2
  rabbitmq-server -detached
fi
# The node registers with epmd a few seconds after -detached returns; until then
# await_startup fails at once instead of waiting, so give it a bounded number of tries.
for attempt in $(seq 1 30); do
  ctl await_startup --timeout 60 >/dev/null 2>&1 && break
  if [[ $attempt == 30 ]]; then
    echo "RabbitMQ did not start; its log is in /var/log/rabbitmq/" >&2
    exit 1
  fi
  sleep 1
done
if ! port_open 15672; then
  timeout -s KILL 120 rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
for _ in $(seq 1 60); do
  port_open 15672 && speaks_amqp && exit 0
  sleep 1
done
echo "RabbitMQ on 127.0.0.1 does not answer AMQP on 5672 or HTTP on 15672; its log is in" \
  "/var/log/rabbitmq/. Stop it (rabbitmqctl stop) and run this script again for a fresh one." >&2
exit 1
