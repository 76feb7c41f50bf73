"""Everything an operator sets, typed: ``GatewayArgs`` (from serve_config.yaml) and the env.

``serve_config.yaml`` passes ``args`` to ``serve_app.app:build_app``; environment variables
are read here and nowhere else (``read_env``). Secrets (the Anthropic key, tenant keys)
come only from the environment and never appear in logs, errors or ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from agents.config import PipelineConfig
from agents.specs import SPECS
from claude_facts.limits import PoolLimits, TierChoice, tier_limits
from claude_facts.models import family_of
from serve_app.tenant_keys import TenantKeyError, TenantKeyring, parse_entries


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetArgs(_Args):
    """The organisation's Claude rate limits, as the budget keeper enforces them."""

    tier: TierChoice = Field(
        default="tier1", description="Anthropic usage tier whose published limits apply."
    )
    limits: dict[str, PoolLimits] = Field(
        default_factory=dict,
        description="Per model pool limits replacing the tier's (pools: haiku, sonnet, opus).",
    )
    headroom: float = Field(
        default=0.98,
        gt=0.5,
        le=1.0,
        description="Share of each limit the keeper hands out (the rest absorbs clock skew "
        "and estimate errors).",
    )
    max_wait_s: float = Field(
        default=120.0, gt=0, description="Longest a call waits for budget before failing."
    )
    start_full: bool = Field(
        default=True,
        description="A new keeper may spend a minute of budget at once; False starts empty "
        "(safer when another deployment may have just spent it). A restarted keeper "
        "always starts empty.",
    )
    tenant_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Share of the budget per tenant when tenants compete, relative to the "
        "others (tenants not named weigh 1).",
    )
    lease_share: float = Field(
        default=0.05,
        ge=0,
        le=0.25,
        description="While a pool has nobody waiting and its buckets are at least half "
        "full, a replica may be leased up to this share of each limit to grant its next "
        "calls without a keeper round trip; 0 sends every call through the keeper.",
    )
    lease_s: float = Field(
        default=2.0, gt=0, le=30, description="How long a lease may be granted from."
    )
    admission_max_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="New generations are refused with 429 when their estimated time to "
        "result, behind their tenant's admitted work, exceeds this.",
    )

    @model_validator(mode="after")
    def _custom_needs_limits(self) -> BudgetArgs:
        if any(weight <= 0 for weight in self.tenant_weights.values()):
            raise ValueError("budget.tenant_weights must be positive")
        if self.tier == "custom" and not self.limits:
            raise ValueError("budget.tier 'custom' needs budget.limits")
        return self

    def pool_limits(self) -> dict[str, PoolLimits]:
        return {**tier_limits(self.tier), **self.limits}


class PoolArgs(_Args):
    """Replica pool of one agent deployment."""

    min_replicas: int = Field(default=1, ge=0, description="Replicas kept when idle.")
    max_replicas: int = Field(default=4, ge=1, description="Most replicas under load.")
    target_ongoing_requests: float = Field(
        default=24.0,
        gt=0,
        description="Autoscaling target per replica; calls are I/O-bound, so it is high.",
    )
    max_ongoing_requests: int = Field(
        default=64, ge=1, description="Concurrent calls one replica accepts."
    )
    num_cpus: float = Field(
        default=0.0, ge=0, description="CPUs reserved per replica (0 locally, 0.1-0.25 on K8s)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> PoolArgs:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class IngressArgs(_Args):
    """The HTTP ingress: streams, jobs, limits per user."""

    replicas: int = Field(default=1, ge=1, description="Ingress replicas.")
    max_ongoing_requests: int = Field(
        default=2000, ge=1, description="Open streams and calls one ingress replica holds."
    )
    num_cpus: float = Field(default=0.0, ge=0, description="CPUs reserved per replica.")
    max_body_bytes: int = Field(
        default=2_000_000, ge=1024, description="Larger request bodies get 413."
    )
    user_generations_per_minute: int = Field(
        default=5, ge=1, description="Generations one user may start per minute."
    )
    ping_interval_s: float = Field(default=15.0, gt=0, description="SSE keep-alive comments.")
    job_deadline_s: float = Field(
        default=600.0, gt=0, description="A generation failing to finish by then fails."
    )
    stage_timeout_s: float = Field(
        default=240.0, gt=0, description="Longest one agent stage may take before a retry."
    )
    replica_beat_s: float = Field(
        default=2.0, gt=0, description="How often an agent replica signals it is still working."
    )
    replica_silence_s: float = Field(
        default=12.0,
        gt=0,
        description="Silence after which an agent replica counts as dead and its stage is retried.",
    )
    stage_attempts: int = Field(
        default=4, ge=1, description="Tries of a stage whose replica died or timed out."
    )
    stage_retry_pause_s: float = Field(
        default=1.0,
        ge=0,
        description="Pause before retrying a failed stage, tripled at each retry, so that "
        "Serve can stop routing to a replica (or node) that died.",
    )
    job_attempts: int = Field(
        default=3,
        ge=1,
        description="Runs of a job in all (its first, then adoptions after its ingress "
        "replica was lost) before it fails.",
    )
    result_ttl_s: float = Field(
        default=3600.0, gt=0, description="How long whole-generation results are cached."
    )
    job_ttl_s: float = Field(
        default=3600.0, gt=0, description="How long finished jobs and their events are kept."
    )
    usage_retention_days: int = Field(
        default=35, ge=1, le=400, description="Days of each tenant's usage `GET /v1/usage` keeps."
    )


class TenantQuota(_Args):
    """What one tenant may use; unset means no limit beyond the fair share."""

    generations_per_minute: int | None = Field(
        default=None, ge=1, description="Generations the tenant may start per minute."
    )
    concurrent_jobs: int | None = Field(
        default=None, ge=1, le=500, description="Generations the tenant may run at once."
    )
    usd_per_day: float | None = Field(
        default=None,
        gt=0,
        description="Dollars the tenant may spend per UTC day; a job is refused when what "
        "was spent and what running jobs hold would pass it.",
    )
    usd_held_per_generation: float = Field(
        default=0.20,
        gt=0,
        description="Dollars held on the tenant's day for each running job under a spend "
        "limit, given back when it ends (set it near a generation's cost).",
    )


class UpstreamArgs(_Args):
    """Where Claude is: the real API, or the simulator of the keyless local run."""

    base_url: str | None = Field(
        default=None,
        description="Messages API base URL; None uses the real API when a key "
        "is set and the bundled simulator otherwise.",
    )
    simulator_url: str = Field(
        default="http://127.0.0.1:8000/claude-sim",
        description="Where the simulator application answers in the keyless local run.",
    )
    timeout_s: float = Field(default=180.0, gt=0, description="Timeout of one upstream call.")
    max_attempts: int = Field(
        default=5, ge=1, description="Tries of a call the API answered 429/529/5xx or dropped."
    )
    agent_cache_ttl_s: float = Field(
        default=3600.0,
        ge=0,
        description="How long identical agent calls are answered from cache (0 disables).",
    )


class GatewayArgs(_Args):
    """Arguments of ``build_app``; every field can be set from serve_config.yaml."""

    pipeline: PipelineConfig = Field(
        default_factory=PipelineConfig, description="Models, prices, caching, retrieval."
    )
    budget: BudgetArgs = Field(default_factory=BudgetArgs, description="Claude rate limits.")
    upstream: UpstreamArgs = Field(default_factory=UpstreamArgs, description="Claude API.")
    ingress: IngressArgs = Field(default_factory=IngressArgs, description="HTTP ingress.")
    agents: dict[str, PoolArgs] = Field(
        default_factory=dict, description="Replica pools per agent name (defaults otherwise)."
    )
    require_auth: bool = Field(
        default=False, description="Refuse to start without tenant keys (production)."
    )
    tenant_quotas: dict[str, TenantQuota] = Field(
        default_factory=dict, description="Quotas by tenant id; others get default_quota."
    )
    default_quota: TenantQuota = Field(
        default_factory=TenantQuota, description="The quota of a tenant not listed."
    )
    operator_tenants: list[str] = Field(
        default_factory=list,
        description="Tenants whose keys see the global /v1/capacity (every pool, queue and "
        "tenant); any other tenant sees its own share. With auth off, every caller does.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="The gateway's logs: one JSON object per line (job, tenant, key id, "
        "and a line per generation with its outcome, tokens and cost), or plain text.",
    )
    api_docs: bool = Field(
        default=True, description="Serve /docs and /openapi.json (switch off in production)."
    )
    pools: dict[str, str] = Field(
        default_factory=dict,
        description="Model id -> rate-limit pool, where the id does "
        "not name its family (haiku, sonnet, opus).",
    )

    @model_validator(mode="after")
    def _known_agents(self) -> GatewayArgs:
        unknown = set(self.agents) - {s.name for s in SPECS}
        if unknown:
            raise ValueError(f"agents: unknown agent names {sorted(unknown)}")
        limits = self.budget.pool_limits()
        for profile in (self.pipeline.fast, self.pipeline.smart):
            if self.pool_of(profile.id) not in limits:
                raise ValueError(f"budget has no limits for the pool of model {profile.id}")
        return self

    def pool_args(self, agent: str) -> PoolArgs:
        return self.agents.get(agent, PoolArgs())

    def pool_of(self, model_id: str) -> str:
        """The rate-limit pool a model belongs to."""
        if model_id in self.pools:
            return self.pools[model_id]
        return family_of(model_id) or model_id


@dataclass(frozen=True)
class Env:
    """What the environment provides; secrets stay wrapped."""

    anthropic_api_key: SecretStr | None
    anthropic_base_url: str | None
    redis_url: SecretStr | None
    tenant_keys: TenantKeyring = field(default_factory=TenantKeyring)
    """Tenants' keys (digests only), from NOCODE_API_KEYS and NOCODE_API_KEYS_FILE."""
    sentry_dsn: SecretStr | None = None
    """Where unexpected errors are reported (``error_tracking``), from SENTRY_DSN."""
    sentry_environment: str | None = None
    """The Sentry environment the reports are filed under, from SENTRY_ENVIRONMENT."""
    nocode_api_key: SecretStr | None = None
    """A key this process presents to a gateway (``serve_app.capacity --gateway``), from
    NOCODE_API_KEY."""

    def __repr__(self) -> str:
        return (
            f"Env(anthropic_api_key={'set' if self.anthropic_api_key else 'unset'}, "
            f"anthropic_base_url={self.anthropic_base_url!r}, "
            f"redis={'set' if self.redis_url else 'unset'}, "
            f"tenants={len(self.tenant_keys.tenants())}, "
            f"sentry={'set' if self.sentry_dsn else 'unset'})"
        )


def read_env() -> Env:
    """The one place environment variables (and the key file they name) are read."""
    keys = parse_entries(
        os.environ.get("NOCODE_API_KEYS") or "", source="NOCODE_API_KEYS", separator=","
    )
    if path := os.environ.get("NOCODE_API_KEYS_FILE"):
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise TenantKeyError(f"NOCODE_API_KEYS_FILE: cannot read {path}: {exc}") from None
        keys += parse_entries(text, source=f"NOCODE_API_KEYS_FILE {path}", separator="\n")
    api_key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    redis_url = os.environ.get("REDIS_URL")
    presented = os.environ.get("NOCODE_API_KEY")
    sentry = os.environ.get("SENTRY_DSN")
    return Env(
        anthropic_api_key=SecretStr(api_key) if api_key else None,
        anthropic_base_url=os.environ.get("ANTHROPIC_BASE_URL") or None,
        redis_url=SecretStr(redis_url) if redis_url else None,
        tenant_keys=TenantKeyring(keys),
        nocode_api_key=SecretStr(presented) if presented else None,
        sentry_dsn=SecretStr(sentry) if sentry else None,
        sentry_environment=os.environ.get("SENTRY_ENVIRONMENT") or None,
    )
