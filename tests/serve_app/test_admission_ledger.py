"""Admission from the remaining work of admitted jobs: estimates, shares, tickets, learning."""

from __future__ import annotations

import pytest

from serve_app.admission_ledger import RECHECK_S, TICKET_GRACE_S, AdmissionLedger
from serve_app.call_demand import Limits

LIMITS = {"sonnet": Limits(rpm=60, itpm=60_000, otpm=6_000)}
POOLS = {"review": "sonnet", "styles": "sonnet"}
# What one generation used, as its result reports it: 600 sonnet output tokens, 6 s of OTPM.
USED = {
    "review": {"calls": 1, "input_tokens": 500, "output_tokens": 300},
    "styles": {"calls": 1, "input_tokens": 400, "output_tokens": 300},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def learned(clock: Clock, weights: dict[str, float] | None = None) -> AdmissionLedger:
    """A ledger that has seen one generation end (taking 4 s) and so knows its usage."""
    ledger = AdmissionLedger(LIMITS, weights, clock=clock)
    work = ledger.work_of(POOLS)
    assert work == {}, "nothing learned yet: no estimate of work"
    assert ledger.decide("first", "acme", "u0", POOLS, {}, bound_s=60).admitted
    clock.now += 4.0
    ledger.finish("first", USED, POOLS)
    return ledger


def test_the_estimate_counts_the_tenants_admitted_work_at_its_share() -> None:
    clock = Clock()
    ledger = learned(clock)
    work = ledger.work_of(POOLS)
    assert work["sonnet"]["output_tokens"] == 600
    # Nothing ahead: its own 6 s of OTPM, plus the 4 s a generation takes on an idle budget.
    assert ledger.estimate("acme", work) == pytest.approx(10.0)
    for n in range(3):
        assert ledger.decide(f"a{n}", "acme", f"u{n}", POOLS, {}, bound_s=60).admitted
    assert ledger.estimate("acme", work) == pytest.approx(4 * 6 + 4)
    # Another tenant with work of its own halves acme's share of the limit.
    assert ledger.decide("g0", "globex", "v0", POOLS, {}, bound_s=60).admitted
    assert ledger.estimate("acme", work) == pytest.approx(4 * 6 * 2 + 4)
    assert ledger.estimate("globex", work) == pytest.approx(2 * 6 * 2 + 4)


def test_what_calls_spent_and_finished_jobs_no_longer_count() -> None:
    clock = Clock()
    ledger = learned(clock)
    ledger.decide("a", "acme", "u", POOLS, {}, bound_s=60)
    ledger.spend("a", "sonnet", {"requests": 1, "input_tokens": 500, "output_tokens": 300})
    assert ledger.estimate("acme", {}) == pytest.approx(3 + 4)
    clock.now += 30
    assert ledger.finish("a", USED, POOLS) == pytest.approx(30 - 10), "actual minus estimated"
    assert ledger.estimate("acme", {}) == pytest.approx(4)


def test_a_refusal_books_a_ticket_that_is_honoured_when_the_user_comes_back() -> None:
    clock = Clock()
    ledger = learned(clock)
    for n in range(9):
        assert ledger.decide(f"a{n}", "acme", f"u{n}", POOLS, {}, bound_s=60).admitted
    refused = ledger.decide("late", "acme", "late-user", POOLS, {}, bound_s=60)
    assert not refused.admitted
    assert refused.estimate_s == pytest.approx(10 * 6 + 4)
    assert refused.retry_after_s == pytest.approx(4)
    # Someone else arriving now queues behind the ticket, not in front of it.
    other = ledger.decide("other", "acme", "other-user", POOLS, {}, bound_s=60)
    assert not other.admitted
    assert other.retry_after_s > refused.retry_after_s
    # Back too early: refused with the time still to wait, the ticket unchanged.
    clock.now += 1.0
    early = ledger.decide("late-2", "acme", "late-user", POOLS, {}, bound_s=60)
    assert (early.admitted, early.retry_after_s) == (False, pytest.approx(3))
    # Back on time: admitted although the estimate is still over the bound.
    clock.now += 3.0
    back = ledger.decide("late-3", "acme", "late-user", POOLS, {}, bound_s=60)
    assert back.admitted
    assert back.estimate_s > 60


def test_a_ticket_nobody_comes_back_for_runs_out() -> None:
    clock = Clock()
    ledger = learned(clock)
    for n in range(9):
        assert ledger.decide(f"a{n}", "acme", f"u{n}", POOLS, {}, bound_s=60).admitted
    refused = ledger.decide("gone", "acme", "gone-user", POOLS, {}, bound_s=60)
    assert not refused.admitted
    ahead = ledger.estimate("acme", {})
    clock.now += refused.retry_after_s + TICKET_GRACE_S + 1
    assert ledger.estimate("acme", {}) == pytest.approx(ahead - 6)


def test_agents_not_seen_yet_count_at_their_prior() -> None:
    ledger = AdmissionLedger(LIMITS, clock=Clock())
    priors = {"review": {"requests": 1, "output_tokens": 600}}
    assert ledger.work_of(POOLS, priors) == {
        "sonnet": {"requests": 1, "input_tokens": 0, "output_tokens": 600}
    }
    assert ledger.estimate("acme", ledger.work_of(POOLS, priors)) == pytest.approx(6)


def test_weights_give_a_tenant_a_larger_share() -> None:
    clock = Clock()
    ledger = learned(clock, weights={"acme": 3.0})
    work = ledger.work_of(POOLS)
    ledger.decide("g", "globex", "v", POOLS, {}, bound_s=60)
    # acme weighs 3 against globex's 1: three quarters of the limit.
    assert ledger.estimate("acme", work) == pytest.approx(6 / 0.75 + 4)


def test_a_ticket_holder_back_early_is_admitted_once_the_work_ahead_drained() -> None:
    clock = Clock()
    ledger = learned(clock)
    for n in range(9):
        assert ledger.decide(f"a{n}", "acme", f"u{n}", POOLS, {}, bound_s=60).admitted
    refused = ledger.decide("late", "acme", "late-user", POOLS, {}, bound_s=60)
    assert refused.retry_after_s == pytest.approx(4)
    clock.now += 1.0
    ledger.finish("a0", USED, POOLS)
    assert ledger.decide("late-2", "acme", "late-user", POOLS, {}, bound_s=60).admitted


def test_an_early_overestimate_is_corrected_for_jobs_already_admitted() -> None:
    clock = Clock()
    ledger = AdmissionLedger(LIMITS, clock=clock)
    # Before anything was learned, each job counts at a prior three times its real use.
    prior = {"review": {"requests": 3, "input_tokens": 2700, "output_tokens": 1800}}
    for n in range(3):
        ledger.decide(f"a{n}", "acme", f"u{n}", {"review": "sonnet"}, prior, bound_s=600)
    assert ledger.estimate("acme", {}) == pytest.approx(3 * 18)
    ledger.finish("a0", {"review": USED["review"]}, POOLS)
    # Learned: review uses 300 output tokens (3 s of OTPM); the rest are re-estimated.
    assert ledger.estimate("acme", {}) == pytest.approx(2 * 3)


def test_retry_after_is_at_most_the_recheck_interval_and_the_due_time_still_holds() -> None:
    clock = Clock()
    ledger = learned(clock)
    for n in range(30):
        ledger.decide(f"a{n}", "acme", f"u{n}", POOLS, {}, bound_s=600)
    refused = ledger.decide("late", "acme", "late-user", POOLS, {}, bound_s=60)
    assert refused.estimate_s - 60 > RECHECK_S
    assert refused.retry_after_s == RECHECK_S
    clock.now += RECHECK_S
    again = ledger.decide("late", "acme", "late-user", POOLS, {}, bound_s=60)
    assert not again.admitted
    clock.now += refused.estimate_s - 60
    assert ledger.decide("late", "acme", "late-user", POOLS, {}, bound_s=60).admitted
