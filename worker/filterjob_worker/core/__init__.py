"""The worker's pure contracts: the filter catalog and pipeline, the codec, the task contract and its
messages, the queue names of a job, the worker's environment (what the operator sets, what the worker
reads) and its broker URL. Nothing here talks to a broker, a file system or a bucket.
"""
