"""Helpers the integration tests share: a real Kubernetes control plane (controlplane.py) and its PKI."""
