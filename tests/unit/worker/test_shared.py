"""What the master shares with its workers (``worker.shared``): flags, failures, indexes."""

from __future__ import annotations

import pytest

from geworker.worker import shared


@pytest.fixture(autouse=True)
def fresh_memory():
    """Run each test on zeroed shared memory and indexes, then put back what was there."""
    memory = shared.shared_memory()
    saved, indexes = bytes(memory[:]), dict(shared._indexes)
    memory[:] = bytes(len(memory))
    shared._indexes.clear()
    yield memory
    memory[:] = saved
    shared._indexes.clear()
    shared._indexes.update(indexes)


def test_the_instance_is_up_once_a_worker_serves():
    assert not shared.instance_up()
    shared.mark_serving(0, 0)
    assert shared.instance_up() and shared.serving_generation() == 0
    shared.bump_generation()
    shared.mark_serving(1, 1)
    assert shared.serving_generation() == 1 and shared.instance_up()
    shared.mark_serving(0, 0)  # an older generation never moves it back
    assert shared.serving_generation() == 1


def test_master_stopping_is_a_separate_flag():
    shared.mark_serving(0, 0)
    assert not shared.master_stopping()
    shared.mark_master_stopping()
    assert shared.master_stopping() and shared.instance_up()


def test_boot_failures_count_per_generation_and_index_until_one_serves():
    assert shared.boot_failures(1, 0) == 0
    assert [shared.count_boot_failure(1, 0) for _ in range(3)] == [1, 2, 3]
    assert shared.count_boot_failure(1, 1) == 1  # each index counts on its own
    assert shared.boot_failures(1, 0) == 3 and shared.boot_failures(0, 0) == 0
    assert shared.count_boot_failure(2, 0) == 1  # a newer reload starts afresh
    assert shared.boot_failures(1, 0) == 0
    shared.mark_serving(1, 1)  # not this generation's slot any more: untouched
    assert shared.boot_failures(2, 0) == 1
    shared.mark_serving(2, 0)
    assert shared.boot_failures(2, 0) == 0
    big = shared.WORKER_SLOTS
    assert shared.count_boot_failure(1, big) == 1 and shared.boot_failures(1, big) == 0


def test_failures_do_not_touch_the_connection_slots(fresh_memory):
    shared.count_boot_failure(5, shared.WORKER_SLOTS - 1)
    slots = fresh_memory[shared.SLOTS_OFFSET:shared.FAILURES_OFFSET]
    assert slots == bytes(8 * shared.WORKER_SLOTS)
    assert fresh_memory[8:16] == bytes(8)  # nor the generations


class _Worker:
    pass


def test_a_released_index_is_given_to_the_replacement():
    first, second = _Worker(), _Worker()
    assert shared.assign_index(first) == (0, 0)
    assert shared.assign_index(second) == (1, 0)
    replacement = _Worker()
    assert shared.assign_index(replacement) == (2, 0)  # first still held by the master
    shared.release_index(first)
    assert shared.assign_index(_Worker()) == (0, 0)
