"""gateway-telemetry-worker: the self-improvement loop of an LLM gateway, fed by Kafka."""

__version__ = "0.1.0"
