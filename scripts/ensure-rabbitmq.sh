#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672 with the management API on
# 15672: install Debian's rabbitmq-server when it is missing, start it when it is not
# running, enable the management plugin. Tests that need the broker use it for real.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached
fi
# The node registers with epmd a few seconds after -detached returns; until then
# await_startup fails at once instead of waiting, so give it a bounded number of tries.
for attempt in $(seq 1 30); do
  rabbitmqctl await_startup --timeout 60 >/dev/null 2>&1 && break
  if [[ $attempt == 30 ]]; then
    echo "RabbitMQ did not start; its log is in /var/log/rabbitmq/" >&2
    exit 1
  fi
  sleep 1
done
if ! port_open 15672; then
  rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
for _ in $(seq 1 60); do
  port_open 5672 && port_open 15672 && exit 0
  sleep 1
done
echo "RabbitMQ did not come up on ports 5672 and 15672" >&2
exit 1
