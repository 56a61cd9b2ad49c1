"""The operator's pure contracts: the FilterJob API model and its status, the CRD generated from them
and its reference, exit codes, the pod policy, the listing format, and what a job decides of its
workers. Nothing here talks to a cluster, a broker or a bucket.
"""
