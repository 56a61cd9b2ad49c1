"""Helpers shared by the test layers: real processes and signals (runs.py), a real Kubernetes control plane (controlplane.py) and its PKI."""
