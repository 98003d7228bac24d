"""Evals: datasets of inputs, pass/fail checks, and the draft and versions run over a dataset.

Built on the run machinery, not beside it: every row of an eval is an ordinary
run started by `services.run_start` (trigger "eval") and executed by the
workers like any other, so its calls are held against the budget and billed
as any call. See `execution.py` for how an eval advances.
"""
