"""Budget leases, the keeper's side: when one is granted, and that leased calls are charged
what they reported, once, with the remainder refunded once."""

from __future__ import annotations

from serve_app.budget import Budget
from serve_app.budget_lease import LeasePolicy
from serve_app.call_demand import CallDemand, Limits

LIMITS = {"sonnet": Limits(rpm=1000, itpm=100_000, otpm=100_000)}
USED = {"input_tokens": 40, "output_tokens": 30}


class Clock:
    """Time that stands still unless a test moves it: no refill between steps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def need(call_id: str, tokens: int = 100, out: int = 100) -> CallDemand:
    return CallDemand(call_id, "sonnet", tokens, out, tag="styles")


def budget(clock: Clock, share: float = 0.05, **kwargs: bool) -> Budget:
    return Budget(LIMITS, lease_policy=LeasePolicy(share, 2.0), clock=clock, **kwargs)


def levels(b: Budget) -> dict[str, float]:
    return {k: round(v, 3) for k, v in b.export_levels()["sonnet"].items()}


async def test_a_lease_is_debited_whole_and_its_calls_are_charged_what_they_reported() -> None:
    b = budget(Clock())
    await b.acquire(need("first"), timeout_s=1)
    lease = b.lease(need("first"))
    assert lease is not None
    # 5% of each limit holds 50 requests and 50 calls' tokens; at most 32 calls a lease.
    assert (lease.requests, lease.input_tokens, lease.output_tokens) == (32, 3200, 3200)
    assert levels(b) == {"requests": 967, "input_tokens": 96_700, "output_tokens": 96_700}
    b.settle("first", **USED)
    for call_id in ("leased-1", "leased-2"):
        b.adopt(lease.lease_id, need(call_id))
        b.settle(call_id, **USED)
        # A report that came twice (a retried settle) is adopted and charged once.
        b.adopt(lease.lease_id, need(call_id))
        b.settle(call_id, **USED)
    left = {"requests": 30.0, "input_tokens": 3000.0, "output_tokens": 3000.0}
    b.return_lease(lease.lease_id, left)
    b.return_lease(lease.lease_id, left)
    # Requests stay spent; tokens are what the three calls reported.
    assert levels(b) == {"requests": 997, "input_tokens": 99_880, "output_tokens": 99_910}
    assert b.grants_open == 0
    assert b.leases.out == 0


async def test_a_leased_call_never_answered_is_refunded_one_maybe_answered_stays_spent() -> None:
    b = budget(Clock(), start_full=True)
    await b.acquire(need("first"), timeout_s=1)
    lease = b.lease(need("first"))
    assert lease is not None
    b.release("first")
    for call_id, end in (("refused", b.release), ("timed-out", b.charge)):
        b.adopt(lease.lease_id, need(call_id))
        end(call_id)
    b.return_lease(lease.lease_id, {"requests": 30.0, "input_tokens": 3000, "output_tokens": 3000})
    # The timed-out call keeps its whole reservation; the refused one got it all back.
    assert levels(b) == {"requests": 999, "input_tokens": 99_900, "output_tokens": 99_900}


async def test_nothing_is_leased_when_the_pool_is_low_paused_or_a_lease_would_hold_one_call() -> (
    None
):
    clock = Clock()
    assert budget(clock, share=0.0).lease(need("x")) is None, "leases are off at share 0"
    low = budget(clock, start_full=False)
    low.import_levels(
        {"sonnet": {"requests": 600, "input_tokens": 50_100, "output_tokens": 9e4}}, 0
    )
    assert low.lease(need("x")) is None, "the lease would leave the input bucket under half"
    paused = budget(clock)
    paused.pause("sonnet", 5)
    assert paused.lease(need("x")) is None
    # 5% of 100,000 input tokens is room for one call of 3,000: not worth a lease.
    assert budget(clock).lease(need("big", tokens=3000)) is None
    assert budget(clock).lease(need("two", tokens=2500)) is not None


async def test_a_lease_never_returned_stays_spent_and_its_late_calls_are_not_refunded() -> None:
    clock = Clock()
    b = budget(clock)
    await b.acquire(need("first"), timeout_s=1)
    lease = b.lease(need("first"))
    assert lease is not None
    b.settle("first", **USED)
    clock.now += 120  # refills everything, then the replica is long dead
    b.import_levels({"sonnet": {"requests": 900, "input_tokens": 90_000, "output_tokens": 9e4}}, 0)
    assert b.sweep_grants(60) == 0
    b.adopt(lease.lease_id, need("late"))
    b.settle("late", **USED)
    b.return_lease(lease.lease_id, lease.amounts())
    assert levels(b) == {"requests": 900, "input_tokens": 90_000, "output_tokens": 90_000}
    assert b.leases.out == 0
