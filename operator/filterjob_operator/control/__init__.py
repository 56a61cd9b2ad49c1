"""The control plane: the operator's kopf handlers and settings, the reconciler of one job, the builders
of the objects a FilterJob owns, and the lister pod's command."""
