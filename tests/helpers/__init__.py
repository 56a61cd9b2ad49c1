"""Helpers shared by the test layers.

Real processes and signals (runs.py), a real Kubernetes control plane (controlplane.py)
and its PKI (pki.py), waits that follow a watch (watching.py), the dev cluster (devcluster.py),
and a harness that plays only the kubelet (kubelet.py, kubelet_config.py, kubelet_pod.py,
kubelet_status.py).
"""
