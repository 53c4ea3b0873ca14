"""Experiments on routing strategies: definitions, arm assignment, always-valid evaluation."""
