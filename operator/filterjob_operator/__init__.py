"""FilterJob control plane: the FilterJob API model, source planning, runners and CLI.

Layered (pyproject.toml's import contracts enforce it), bottom to top: :mod:`.core` (the pure API model
and contracts), :mod:`.adapters` (the broker, Kubernetes, sources and buckets), then :mod:`.control`
(the operator), :mod:`.local` (``filterjob run``) and :mod:`.watch`, each on its own, and :mod:`.cli` on top.
"""
