"""Local mode: ``filterjob run`` on this machine, with a process pool or through RabbitMQ.

- :mod:`.pool` — the process pool runner (no broker); :mod:`.interrupts` keeps its
  Ctrl-C and SIGTERM where nothing is half done.
- :mod:`.brokered` — a run (or a re-drive) through RabbitMQ with local worker processes
  (:mod:`.supervisor`), counted from its progress queue (:mod:`.progress`, :mod:`.tally`)
  while :mod:`.follow` keeps the workers running until the last task.
- :mod:`.start`, :mod:`.options`, :mod:`.summary` — what both runners share.

Nothing here is used by the operator: the cluster never imports local mode.
"""
