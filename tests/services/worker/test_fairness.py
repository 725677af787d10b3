"""Fair CPU: a heavy render leaves the event loop after its slice, and a run's budget holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from services.worker.engine.fairness import CpuBudgetExceeded, FairRenderer, run_cpu
from shared.nodes import NodeError

# About 120,000 loop iterations: a few hundred ms of CPU, inside every per-render limit.
HEAVY = (
    "{% for i in range(20000) %}{% for j in range(5) %}{% endfor %}{% endfor %}done {{ trigger.n }}"
)
CONTEXT = {"trigger": {"n": 7}, "steps": {}, "run": {"id": "r"}}


@pytest.fixture(scope="module")
def renderer() -> Iterator[FairRenderer]:
    fair = FairRenderer(slice_s=0.02, processes=1)
    yield fair
    fair.close()


async def test_a_light_render_stays_inline(renderer: FairRenderer) -> None:
    with run_cpu(5.0) as account:
        assert await renderer.render({"x": "{{ trigger.n + 1 }}"}, CONTEXT) == {"x": 8}
    assert not account.heavy
    assert 0 < account.spent_s < 0.02


async def test_a_heavy_render_finishes_off_the_loop(renderer: FairRenderer) -> None:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            current = time.perf_counter()
            gaps.append(current - last)
            last = current

    # Start the render process first, so its start-up is not what the ticker measures.
    with run_cpu(30.0) as warm:
        warm.heavy = True
        assert await renderer.render("{{ 1 }}", CONTEXT) == 1
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    with run_cpu(30.0) as account:
        assert await renderer.render(HEAVY, CONTEXT) == "done 7"
        assert account.heavy
        # The next render of a heavy run goes straight to the process, and still works.
        assert await renderer.render("{{ trigger.n * 2 }}", CONTEXT) == 14
    stop.set()
    await tick
    # The loop was held for about one slice, never for the whole render.
    assert max(gaps) < 0.1, f"the loop stalled for {max(gaps):.3f} s"
    assert account.spent_s > 0.05


async def test_template_errors_come_back_from_the_process(renderer: FairRenderer) -> None:
    with run_cpu(30.0) as account:
        account.heavy = True
        with pytest.raises(NodeError, match="ZeroDivisionError"):
            await renderer.render("{{ 1 // 0 }}", CONTEXT)


async def test_a_run_past_its_budget_fails_the_step_naming_the_limit(
    renderer: FairRenderer,
) -> None:
    async def spend() -> None:
        for _ in range(20):
            await renderer.render(HEAVY, CONTEXT)

    with run_cpu(0.05), pytest.raises(CpuBudgetExceeded, match=r"CPU budget of 0\.05 s"):
        await spend()


async def test_outside_a_run_it_renders_as_before(renderer: FairRenderer) -> None:
    assert await renderer.render(HEAVY, CONTEXT) == "done 7"
