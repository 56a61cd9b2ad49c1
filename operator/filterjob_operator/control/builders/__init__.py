"""Pure builders of the objects a FilterJob owns: spec in, manifest dict out.

One module per kind. Each builds the identity (name, namespace, labels), the
desired fields and the owner reference; nothing here talks to a cluster.
"""
