"""The budget keeper's core: buckets, settle and refund, fairness, deadlines, pauses."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import pytest

from serve_app.budget import Budget
from serve_app.call_demand import CallDemand, Limits
from serve_app.errors import BudgetTimeoutError, CancelledError


def need(
    call_id: str,
    *,
    user: str = "u",
    tokens: int = 10,
    out: int = 10,
    job: str | None = None,
    priority: Literal["interactive", "batch"] = "interactive",
    tenant: str = "acme",
    admitted_at: float = 0.0,
    path_after: int = 0,
) -> CallDemand:
    return CallDemand(
        call_id,
        "sonnet",
        tokens,
        out,
        user=user,
        job_id=job,
        priority=priority,
        tenant=tenant,
        job_admitted_at=admitted_at,
        path_after=path_after,
    )


async def granted_order(budget: Budget, demands: list[CallDemand], wait_first: int) -> list[str]:
    """Queue every demand at once on an empty budget; the call ids in the order granted."""
    order: list[str] = []
    enough = asyncio.Event()

    async def call(demand: CallDemand) -> None:
        await budget.acquire(demand, timeout_s=60)
        order.append(demand.call_id)
        if len(order) >= wait_first:
            enough.set()

    tasks = [asyncio.create_task(call(d)) for d in demands]
    await enough.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return order


async def test_grants_within_limits_and_waits_for_refill() -> None:
    budget = Budget({"sonnet": Limits(rpm=600, itpm=10_000, otpm=10_000)})
    started = time.monotonic()
    for i in range(600):
        await budget.acquire(need(f"c{i}"), timeout_s=1)
    assert time.monotonic() - started < 0.5, "a full bucket grants at once"
    await budget.acquire(need("late"), timeout_s=1)
    assert time.monotonic() - started >= 0.09, "the 601st call waited for one refill (0.1 s)"


async def test_settle_refunds_estimates_and_is_idempotent() -> None:
    # The clock stands still, so that no refill blurs what the settles refunded.
    budget = Budget({"sonnet": Limits(rpm=100, itpm=1_000, otpm=1_000)}, clock=lambda: 0.0)
    await budget.acquire(need("a", tokens=800, out=900), timeout_s=1)
    assert budget.snapshot()["sonnet"]["remaining"]["output_tokens"] == 100
    budget.settle("a", input_tokens=50, output_tokens=100)
    budget.settle("a", input_tokens=50, output_tokens=100)
    remaining = budget.snapshot()["sonnet"]["remaining"]
    assert remaining["input_tokens"] == 950
    assert remaining["output_tokens"] == 900
    assert budget.snapshot()["sonnet"]["remaining"]["requests"] == 99


async def test_release_refunds_everything() -> None:
    budget = Budget({"sonnet": Limits(rpm=2, itpm=1_000, otpm=1_000)})
    await budget.acquire(need("a", tokens=900), timeout_s=1)
    budget.release("a")
    await budget.acquire(need("b", tokens=900), timeout_s=1)


async def test_light_tenant_is_not_stuck_behind_a_heavy_one() -> None:
    budget = Budget({"sonnet": Limits(rpm=600, itpm=10**6, otpm=10**6)}, start_full=False)
    order: list[str] = []

    async def call(call_id: str, tenant: str) -> None:
        await budget.acquire(need(call_id, tenant=tenant, job=call_id), timeout_s=30)
        order.append(tenant)

    heavy = [asyncio.create_task(call(f"h{i}", "heavy")) for i in range(20)]
    await asyncio.sleep(0.05)
    light = asyncio.create_task(call("l0", "light"))
    await light
    assert order.index("light") <= 2, order
    for task in heavy:
        task.cancel()


async def test_an_admitted_job_is_not_overtaken_by_later_jobs_of_its_tenant() -> None:
    budget = Budget({"sonnet": Limits(rpm=1200, itpm=10**6, otpm=10**6)}, start_full=False)
    # Three jobs of three users, admitted in turn, each with four calls waiting at once:
    # the oldest job's calls all go first, then the next job's, whoever its user is.
    demands = [
        need(f"{job}-{n}", user=f"user-{job}", job=job, admitted_at=at)
        for n in range(4)
        for job, at in (("newest", 3.0), ("oldest", 1.0), ("middle", 2.0))
    ]
    order = await granted_order(budget, demands, wait_first=12)
    jobs = [call_id.split("-")[0] for call_id in order]
    assert jobs == ["oldest"] * 4 + ["middle"] * 4 + ["newest"] * 4, order


async def test_within_a_job_the_call_with_the_longest_path_behind_it_goes_first() -> None:
    budget = Budget({"sonnet": Limits(rpm=1200, itpm=10**6, otpm=10**6)}, start_full=False)
    demands = [need(f"path{p}", job="j", path_after=p) for p in (0, 3, 1, 2)]
    assert await granted_order(budget, demands, wait_first=4) == [
        "path3",
        "path2",
        "path1",
        "path0",
    ]


@pytest.mark.parametrize(("weights", "share_of_few"), [(None, 0.5), ({"few": 3.0}, 0.75)])
async def test_a_tenant_with_many_users_cannot_take_the_share_of_one_with_few(
    weights: dict[str, float] | None, share_of_few: float
) -> None:
    limits = {"sonnet": Limits(rpm=2400, itpm=10**6, otpm=10**6)}
    budget = Budget(limits, start_full=False, weights=weights)
    many = [
        need(f"many-{u}-{n}", user=f"m{u}", tenant="many", job=f"m{u}")
        for u in range(24)
        for n in range(5)
    ]
    few = [
        need(f"few-{u}-{n}", user=f"f{u}", tenant="few", job=f"f{u}")
        for u in range(3)
        for n in range(40)
    ]
    order = await granted_order(budget, many + few, wait_first=80)
    granted = order[:80]
    share = sum(call_id.startswith("few") for call_id in granted) / len(granted)
    assert share == pytest.approx(share_of_few, abs=0.05), order


async def test_a_tenant_back_from_idle_does_not_bank_its_absence() -> None:
    budget = Budget({"sonnet": Limits(rpm=1200, itpm=10**6, otpm=10**6)}, start_full=False)
    order: list[str] = []
    granted = asyncio.Condition()

    async def call(demand: CallDemand) -> None:
        await budget.acquire(demand, timeout_s=60)
        async with granted:
            order.append(demand.tenant)
            granted.notify_all()

    async def until(count: int) -> None:
        async with granted:
            await granted.wait_for(lambda: len(order) >= count)

    busy = [asyncio.create_task(call(need(f"b{n}", tenant="busy", job="b"))) for n in range(40)]
    await until(20)
    # "late" was idle while "busy" was served; it now shares, it does not take 20 in a row.
    late = [asyncio.create_task(call(need(f"l{n}", tenant="late", job="l"))) for n in range(20)]
    await until(40)
    for task in busy + late:
        task.cancel()
    await asyncio.gather(*busy, *late, return_exceptions=True)
    after = order[20:40]
    assert 8 <= after.count("late") <= 12, order


async def test_interactive_goes_before_batch() -> None:
    budget = Budget({"sonnet": Limits(rpm=600, itpm=10**6, otpm=10**6)}, start_full=False)
    order: list[str] = []

    async def call(call_id: str, priority: str) -> None:
        await budget.acquire(need(call_id, user=call_id, priority=priority), timeout_s=30)
        order.append(priority)

    tasks = [asyncio.create_task(call(f"b{i}", "batch")) for i in range(5)]
    tasks += [asyncio.create_task(call("i0", "interactive"))]
    await asyncio.sleep(0)
    await tasks[-1]
    assert order[0] == "interactive"
    for task in tasks:
        task.cancel()


async def test_deadline_gives_a_typed_error_with_retry_after() -> None:
    budget = Budget({"sonnet": Limits(rpm=1, itpm=10**6, otpm=10**6)})
    await budget.acquire(need("a"), timeout_s=1)
    with pytest.raises(BudgetTimeoutError) as err:
        await budget.acquire(need("b"), timeout_s=0.2)
    assert err.value.status == 503
    assert err.value.retry_after_s is not None
    assert err.value.retry_after_s > 30
    assert budget.snapshot()["sonnet"]["queue_depth"] == 0


async def test_pause_and_observed_headers_hold_grants_back() -> None:
    # Real time for the pause, then frozen: at 10**6 ITPM a millisecond between the headers
    # and the snapshot refills 17 tokens, which a loaded CI machine once took.
    frozen: list[float] = []
    budget = Budget(
        {"sonnet": Limits(rpm=600, itpm=10**6, otpm=10**6)},
        clock=lambda: frozen[0] if frozen else time.monotonic(),
    )
    budget.pause("sonnet", 0.3)
    started = time.monotonic()
    await budget.acquire(need("a"), timeout_s=2)
    assert time.monotonic() - started >= 0.29
    frozen.append(time.monotonic())
    budget.observe(
        "sonnet",
        {
            "anthropic-ratelimit-requests-remaining": "3",
            "anthropic-ratelimit-input-tokens-remaining": "5000",
        },
    )
    snap = budget.snapshot()["sonnet"]["remaining"]
    assert snap["requests"] == 3
    assert snap["input_tokens"] == 5_999


async def test_cancelling_a_job_fails_its_waiting_calls_only() -> None:
    budget = Budget({"sonnet": Limits(rpm=1, itpm=10**6, otpm=10**6)})
    await budget.acquire(need("first"), timeout_s=1)
    mine = asyncio.create_task(budget.acquire(need("m", job="job-1"), timeout_s=30))
    other = asyncio.create_task(budget.acquire(need("o", user="v", job="job-2"), timeout_s=30))
    await asyncio.sleep(0.01)
    assert budget.job_queue("job-2") is not None
    assert budget.cancel_job("job-1") == 1
    with pytest.raises(CancelledError):
        await mine
    assert not other.done()
    other.cancel()


async def test_utilisation_is_measured_on_settled_usage() -> None:
    budget = Budget({"sonnet": Limits(rpm=60, itpm=6_000, otpm=6_000)})
    for i in range(6):
        await budget.acquire(need(f"c{i}", tokens=100, out=500), timeout_s=1)
        budget.settle(f"c{i}", input_tokens=100, output_tokens=50)
    used = budget.snapshot()["sonnet"]["utilisation"]["1m"]
    assert used == {"requests": 0.1, "input_tokens": 0.1, "output_tokens": 0.05}


async def test_max_tokens_is_right_sized_from_answers_and_reset_when_cut() -> None:
    budget = Budget({"sonnet": Limits(rpm=600, itpm=10**6, otpm=10**6)})

    async def call(
        call_id: str, produced: int, *, truncated: bool = False, full: bool = False
    ) -> int:
        ask = CallDemand(call_id, "sonnet", 10, 4000, tag="review", full_output=full)
        granted = await budget.acquire(ask, timeout_s=1)
        budget.settle(call_id, input_tokens=10, output_tokens=produced, truncated=truncated)
        return granted

    assert [await call(f"w{i}", 300) for i in range(3)] == [4000, 4000, 4000]
    assert await call("sized", 200) == 375
    assert await call("cut", 375, truncated=True) == 375
    assert await call("after-cut", 300) == 4000, "a cut answer resets the bound"
    assert await call("retry", 900, full=True) == 4000


async def test_a_charged_grant_stays_spent() -> None:
    budget = Budget({"sonnet": Limits(rpm=100, itpm=1_000, otpm=1_000)})
    await budget.acquire(need("a", tokens=800, out=900), timeout_s=1)
    budget.charge("a")  # it timed out: the API may have counted it
    budget.release("a")
    assert budget.settle("a", input_tokens=1, output_tokens=1) is None, "the grant has ended"
    remaining = budget.snapshot()["sonnet"]["remaining"]
    assert remaining["input_tokens"] == pytest.approx(200, abs=2)
    assert remaining["output_tokens"] == pytest.approx(100, abs=2)


async def test_grants_nobody_settles_are_swept_and_charged() -> None:
    now = [1000.0]
    budget = Budget({"sonnet": Limits(rpm=100, itpm=10_000, otpm=10_000)}, clock=lambda: now[0])
    await budget.acquire(need("orphan", tokens=500), timeout_s=1)
    now[0] += 100
    await budget.acquire(need("recent", tokens=500), timeout_s=1)
    assert budget.sweep_grants(older_than_s=50) == 1
    assert budget.settle("orphan", input_tokens=1, output_tokens=1) is None
    assert budget.settle("recent", input_tokens=1, output_tokens=1) is not None
    assert budget.sweep_grants(older_than_s=0) == 0, "nothing is left to sweep"


async def test_a_cancelled_waiter_leaves_the_queue_and_its_turn_goes_to_the_next() -> None:
    budget = Budget({"sonnet": Limits(rpm=120, itpm=10_000, otpm=10_000)}, start_full=False)
    gone = asyncio.create_task(budget.acquire(need("gone"), timeout_s=30))
    await asyncio.sleep(0.01)
    assert budget.snapshot()["sonnet"]["queue_depth"] == 1
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert budget.snapshot()["sonnet"]["queue_depth"] == 0
    await budget.acquire(need("next"), timeout_s=5)
    assert budget.settle("gone", input_tokens=1, output_tokens=1) is None, "never granted"


async def test_settled_history_is_kept_for_the_longest_window_only() -> None:
    now = [0.0]
    budget = Budget({"sonnet": Limits(rpm=600, itpm=10**6, otpm=10**6)}, clock=lambda: now[0])
    for i in range(400):
        now[0] = i * 10.0
        await budget.acquire(need(f"c{i}", tokens=100, out=100), timeout_s=1)
        budget.settle(f"c{i}", input_tokens=100, output_tokens=100)
    # Nobody read a snapshot meanwhile; only the last five minutes of settles are kept.
    assert len(budget.pool("sonnet").history) <= 31
    used = budget.snapshot()["sonnet"]["utilisation"]["5m"]
    assert used["requests"] == pytest.approx(31 / 3000, abs=1e-3)
