#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on 127.0.0.1:5672 with the management API on
# 15672, starting the local one if needed. Tests that need the broker use it for real.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is not installed" >&2
    exit 1
  fi
  echo "starting RabbitMQ"
  rabbitmq-server -detached
fi
rabbitmqctl await_startup >/dev/null
if ! port_open 15672; then
  rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
for _ in $(seq 1 60); do
  port_open 5672 && port_open 15672 && exit 0
  sleep 1
done
echo "RabbitMQ did not come up on ports 5672 and 15672" >&2
exit 1
