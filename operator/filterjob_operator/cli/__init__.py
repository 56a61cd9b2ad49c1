"""The ``filterjob`` command line: the group, and its commands from one module per group.

- :mod:`.run` — ``run``; :mod:`.watch` — ``watch``;
- :mod:`.queues` — ``parked``, ``redrive``, ``clean``;
- :mod:`.pod` — ``operator``, ``list-inputs``, ``verify-outputs`` (what the cluster runs);
- :mod:`.docs` — ``crd``, ``filters``, ``samples``, ``validate``;
- :mod:`.common` — the ``--broker`` option and errors as one line; :mod:`.bar` — the progress bar.

Exit codes are defined once, in :mod:`filterjob_operator.core.exits`. Importing this package
stays cheap (see ``_LAZY`` in :mod:`.common`).
"""

from __future__ import annotations

import click

from filterjob_operator.cli import docs, pod, queues, run, watch
from filterjob_worker import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filterjob")
def main() -> None:
    """FilterJob: batch image filtering, on a laptop or on Kubernetes."""


for command in (
    run.run,
    watch.watch_command,
    queues.parked_command,
    queues.redrive_command,
    queues.clean_command,
    pod.list_inputs_command,
    pod.verify_outputs_command,
    pod.operator,
    docs.validate,
    docs.crd,
    docs.filters,
    docs.samples_command,
):
    main.add_command(command)
