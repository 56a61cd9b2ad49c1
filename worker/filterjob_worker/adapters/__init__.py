"""What the worker package says to the outside: storage (files and buckets) and the AMQP calls it owns."""
