"""What the operator says to the outside: the broker (AMQP and the management API), the Kubernetes API,
the sources and destinations of images, the verifier of outputs and the operator's metrics."""
