"""Everything the control plane says to RabbitMQ about a job, one concern per module.

- :mod:`.enqueue`: publishing tasks in a confirm window, from a resumable :class:`~.enqueue.Cursor`;
- :mod:`.backlog`: a job's keys to enqueue, a batch at a time from the confirmed position on;
- :mod:`.depths`: how many messages wait in a job's queues;
- :mod:`.management`: the management HTTP API (unacked counts);
- :mod:`.consumers`: which workers consume a job's tasks and what each holds unacked;
- :mod:`.parked`: parked tasks, listed in place and re-driven;
- :mod:`.listings`: a job's inputs (and outputs) listing stored in a queue;
- :mod:`.inventory`: what of a job exists on the broker, and removing it.

The messages themselves (tasks, events, their headers) are :mod:`filterjob_worker.core.envelope`'s,
shared with the workers; the queue names are :mod:`filterjob_worker.core.topology`'s.
"""
