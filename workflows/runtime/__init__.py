"""Executing runs: the engine, fair dispatch between workspaces, and the flow
from one step to the next."""
