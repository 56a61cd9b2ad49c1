"""FilterJob data plane: the filter catalog, image codec, storage and task contract.

The worker package never imports the operator; the operator may import this one.
"""

__version__ = "0.1.0"
