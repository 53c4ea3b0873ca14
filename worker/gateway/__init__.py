"""For gateways: report every model call to the worker, and route by what it publishes.

- `emitter.CallEmitter`: builds v1 call events (validated before they leave), redacts secrets in
  failures, batches them to Kafka with an idempotent producer, never blocks the request path.
- `litellm.TelemetryLogger` / `litellm.HeuristicsRoutingPlugin`: LiteLLM's callback and routing
  plugin on top of the emitter and the router client (`pip install './clients/python[litellm]'`: this package and
  the modules it imports, without the worker).
- Routing itself: `worker.gateway.router` (the subscriber) and `worker.gateway.table` (the choice).
"""
