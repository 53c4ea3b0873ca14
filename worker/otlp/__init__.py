"""OpenTelemetry in: an OTLP/HTTP receiver of GenAI spans (`telemetry-worker otlp`), which produces them to
the input topics as call events (mapping in worker/calls/spans.py)."""
