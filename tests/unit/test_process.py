"""settle_heap: what startup built leaves the cyclic collector's generations, and young collections are rarer."""

import gc
from collections.abc import Iterator

import pytest

from core.process import GC_YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.timeout(30)
def test_settle_heap_freezes_startup_objects_and_raises_the_young_threshold(restored_gc: None) -> None:
    class Built:  # something startup made that is part of a reference cycle, like a module's classes
        pass

    built = Built()
    built.me = built  # type: ignore[attr-defined]
    before = gc.get_threshold()
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert not any(obj is built for obj in gc.get_objects())  # out of every generation the collector walks
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
