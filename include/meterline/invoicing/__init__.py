"""Invoicing: the gate that decides whether a period's drafts may leave, the emitter that issues
them as immutable documents, and the corrections operators apply afterwards."""
