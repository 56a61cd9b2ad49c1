"""The worker's pure contracts: the filter catalog and pipeline, the codec, the task contract and its
messages, the queue names of a job. Nothing here talks to a broker, a file system or a bucket.
"""
