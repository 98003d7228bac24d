"""The `template` step kind: text built from variables, without calling a model."""

from workflows.steps.template.config import (
    DEFAULTS,
    TYPE,
    Config,
    TemplateStep,
    next_key,
    output_schema,
    targets,
    templates,
)
from workflows.steps.template.run import check, execute

__all__ = [
    "DEFAULTS",
    "TYPE",
    "Config",
    "TemplateStep",
    "check",
    "execute",
    "next_key",
    "output_schema",
    "targets",
    "templates",
]
