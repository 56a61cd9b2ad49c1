"""The life of one FilterJob, as small steps around one pure decision.

Runs as a kopf daemon per FilterJob (see ``handlers``), so an operator restart resumes
every job: enqueueing continues from the cursor in ``status.enqueued`` and progress is
read back from the broker, never from memory.

- :mod:`.job`: the order of the steps, attempt after attempt;
- :mod:`.context`: what every step is given (the job's object, its services, how to report)
  and the :class:`~.context.Attempt` opened once per attempt (typed job, topology, broker);
- :mod:`.services`: the Kubernetes API, the broker and the events, as the steps use them;
- :mod:`.inputs`: list the inputs (a stored listing, here, or by a lister Job);
- :mod:`.children`: the worker Deployment and its autoscaler (an HPA, or KEDA's ScaledObject);
- :mod:`.enqueue`: publish the tasks from the saved cursor on;
- :mod:`.follow`: observe, :mod:`.decision` (pure), act: status and scaling until done;
- :mod:`.costs`: the worker pods' deletion costs, so that scale-in spares busy workers;
- :mod:`.finish`: verify the outputs and end the job with its final counts;
- :mod:`.redrive`: move parked tasks back on request;
- :mod:`.finished`: a finished job waits for its TTL or a re-drive request.
"""
