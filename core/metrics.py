"""Prometheus instruments. One `Metrics` per process, owned by its composition root (no global registry)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Everything agentrunner measures; the API uses the http_* and responses_open parts, workers the rest."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("agentrunner_http_requests", "HTTP requests", ["method", "route", "status"],
                                     registry=r)
        self.http_seconds = Histogram("agentrunner_http_request_seconds", "HTTP request latency",
                                      ["method", "route"], buckets=_LATENCY, registry=r)
        self.cache_control_rejections = Counter("agentrunner_cache_control_rejections",
                                                "Requests refused for their cache_control breakpoints", ["reason"],
                                                registry=r)
        self.responses_open = Gauge("agentrunner_responses_open", "Responses not finished yet", ["status"],
                                    registry=r)
        self.model_call_seconds = Histogram("agentrunner_model_call_seconds", "Model call latency (one attempt)",
                                            ["model"], buckets=_LATENCY, registry=r)
        self.model_call_errors = Counter("agentrunner_model_call_errors", "Failed model call attempts",
                                         ["model", "status"], registry=r)
        self.tool_call_seconds = Histogram("agentrunner_tool_call_seconds", "Server-side tool call latency",
                                           ["tool"], buckets=_LATENCY, registry=r)
        self.tool_call_errors = Counter("agentrunner_tool_call_errors", "Tool calls that failed or timed out",
                                        ["tool"], registry=r)
        self.tokens = Counter("agentrunner_tokens", "Tokens reported by upstreams", ["model", "kind"], registry=r)
        self.response_seconds = Histogram("agentrunner_response_seconds", "Response duration, created to terminal",
                                          ["model", "status"], buckets=_LATENCY, registry=r)
        self.steps_per_response = Histogram("agentrunner_steps_per_response", "Steps (model + tool calls)",
                                            ["model"], buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55), registry=r)
