"""Closed-loop evaluation of routing: simulated models, a router that obeys the published rules,
a simulated clock, and the oracle that knows the truth (for regret). Pure Python, no services.

`telemetry-worker routing-eval` (or `make routing-eval`) runs every scenario and prints the table.
"""
