"""FilterJob data plane: the filter catalog, image codec, storage and task contract.

Layered (pyproject.toml's import contracts enforce it): :mod:`.core` holds the pure contracts,
:mod:`.adapters` what talks to storage and the broker, and the modules at the top the worker service.

The worker package never imports the operator; the operator may import this one.
"""

__version__ = "0.1.0"
