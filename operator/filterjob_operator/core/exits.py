"""The exit codes of the ``filterjob`` command, one meaning each (README lists them).

A script can tell "some images failed" from "nothing could run" without parsing
messages: only :data:`FAILED` means that images were processed at all.
"""

from __future__ import annotations

#: Every image was written (or skipped because its output exists).
OK = 0
#: Some images failed, or the run was interrupted (Ctrl-C, SIGTERM) before the end.
FAILED = 1
#: The job file, the command line or the configuration is invalid; nothing ran.
INVALID = 2
#: The broker cannot be reached or refused us (closed port, unknown host, wrong
#: password, unknown vhost, a queue that does not exist); nothing ran.
BROKER = 3
#: The Kubernetes API cannot be reached or refused us (kubeconfig, RBAC, a job that
#: does not exist); nothing ran.
CLUSTER = 4
