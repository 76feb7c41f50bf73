"""Prometheus metrics of the gateway, exported by Ray on each node's metrics port.

Names carry the ``nocode_`` prefix (Ray adds ``ray_``); the seed plan's metrics map onto
them: requests and their latency (``generations``), tokens per model, rate-limit hits and
API errors (``upstream_errors``), and the queue (``budget_wait_seconds``,
``budget_queue_depth``). ``cluster/grafana/`` draws them.
"""

from __future__ import annotations

from functools import cache

from ray.util.metrics import Counter, Gauge, Histogram

SECONDS = [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600]


class GatewayMetrics:
    """One process's metric handles (Ray metrics must be created in the process using them)."""

    def __init__(self) -> None:
        self.generations = Counter(
            "nocode_generations_total",
            description="Generations by final status.",
            tag_keys=("status",),
        )
        self.generation_seconds = Histogram(
            "nocode_generation_seconds",
            description="Time from accepted to result or error.",
            boundaries=SECONDS,
            tag_keys=("status",),
        )
        self.agent_calls = Counter(
            "nocode_agent_calls_total",
            description="Upstream calls by agent and outcome.",
            tag_keys=("agent", "outcome"),
        )
        self.tokens = Counter(
            "nocode_claude_tokens_total",
            description="Tokens the API reported, by model and "
            "kind (input, output, cache_write, cache_read).",
            tag_keys=("model", "kind"),
        )
        self.upstream_errors = Counter(
            "nocode_upstream_errors_total",
            description="API errors by model and status (429 = rate-limit hits).",
            tag_keys=("model", "status"),
        )
        self.budget_wait = Histogram(
            "nocode_budget_wait_seconds",
            description="Time a call waited for budget.",
            boundaries=SECONDS,
            tag_keys=("pool",),
        )
        self.estimate_error = Histogram(
            "nocode_admission_estimate_error_seconds",
            description="How far a generation's time to result was from admission's "
            "estimate: late (took longer) or early.",
            boundaries=SECONDS,
            tag_keys=("direction",),
        )
        self.loop_failures = Counter(
            "nocode_loop_failures_total",
            description="Failed steps of a background loop (heartbeat, sweeper, feed), "
            "each retried.",
            tag_keys=("loop",),
        )
        self.keeper_unreachable = Counter(
            "nocode_keeper_unreachable_total",
            description="Calls to the budget keeper that found it down (it restarts on its "
            "own): acquires are retried, reports of a call's end are dropped.",
            tag_keys=("call",),
        )
        self.job_ownership = Counter(
            "nocode_job_ownership_total",
            description="Ownership changes: adopted (from a silent replica), lost (taken "
            "over, this replica stopped writing), exhausted (adoptions or deadline used up).",
            tag_keys=("event",),
        )
        self.cache_hits = Counter(
            "nocode_cache_hits_total",
            description="Answers served from cache, by cache.",
            tag_keys=("cache",),
        )
        self.cache_lookups = Counter(
            "nocode_cache_lookups_total",
            description="Cache lookups, by cache: hits over lookups is the hit ratio.",
            tag_keys=("cache",),
        )
        self.first_event = Histogram(
            "nocode_first_event_seconds",
            description="Time from a generation's acceptance to its first stage event.",
            boundaries=SECONDS,
        )
        self.stage_seconds = Histogram(
            "nocode_stage_seconds",
            description="Time of one agent stage, budget wait included, by agent.",
            boundaries=SECONDS,
            tag_keys=("agent",),
        )
        self.cost = Counter(
            "nocode_cost_usd_total",
            description="Dollars the API charged, at the configured prices, by model and tenant.",
            tag_keys=("model", "tenant"),
        )
        self.attempts = Counter(
            "nocode_agent_attempts_total",
            description="Agent work by agent and reason: first (each stage once), repair "
            "(an answer that failed validation asked to be fixed), replica (the stage "
            "retried on another replica). Repairs and replica retries over firsts is the "
            "share done again.",
            tag_keys=("agent", "reason"),
        )
        self.budget_remaining = Gauge(
            "nocode_budget_remaining",
            description="What the keeper's bucket holds now, by pool and limit kind.",
            tag_keys=("pool", "kind"),
        )
        self.budget_utilisation = Gauge(
            "nocode_budget_utilisation",
            description="Share of the limit settled over the last minute, by pool and kind.",
            tag_keys=("pool", "kind"),
        )
        self.budget_queue = Gauge(
            "nocode_budget_queue_depth",
            description="Calls waiting for budget, by pool.",
            tag_keys=("pool",),
        )


@cache
def metrics() -> GatewayMetrics:
    """This process's metrics."""
    return GatewayMetrics()
