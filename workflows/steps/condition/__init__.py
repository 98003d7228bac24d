"""The `condition` step kind: the first case that holds picks the next step, else `else`."""

from workflows.steps.condition.config import (
    DEFAULTS,
    OP_LABELS,
    OUTPUT_SCHEMA,
    TYPE,
    UNARY_OPS,
    Case,
    ConditionStep,
    Config,
    Op,
    next_key,
    output_schema,
    targets,
    templates,
)
from workflows.steps.condition.run import REGEX_TIMEOUT_SECONDS, check, execute

__all__ = [
    "DEFAULTS",
    "OP_LABELS",
    "OUTPUT_SCHEMA",
    "REGEX_TIMEOUT_SECONDS",
    "TYPE",
    "UNARY_OPS",
    "Case",
    "ConditionStep",
    "Config",
    "Op",
    "check",
    "execute",
    "next_key",
    "output_schema",
    "targets",
    "templates",
]
