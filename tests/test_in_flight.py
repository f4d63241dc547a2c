"""The adaptive in-flight window as a pure function of what it observed (no clock, no server)."""

from __future__ import annotations

import pytest

from airflow_provider_greenapi.in_flight import InFlightWindow


def settle(window: InFlightWindow, latency: float, answers: int = 200) -> int:
    for _ in range(answers // 10):
        window.observe(answers=10, answer_seconds=10 * latency)
    return window.size


def test_before_any_answer_the_window_fits_one_second_answers():
    assert InFlightWindow(pace=10, cap=64).size == 16  # 10/s x 1 s x 1.5 + 1


@pytest.mark.parametrize(("latency", "expected"), [(0.05, 2), (0.2, 4), (1.0, 16), (2.0, 31), (3.0, 46)])
def test_the_window_is_pace_times_latency_with_headroom(latency, expected):
    assert settle(InFlightWindow(pace=10, cap=64), latency) == expected


def test_the_window_follows_the_pace():
    assert settle(InFlightWindow(pace=5, cap=64), 2.0) == 16


def test_a_request_waiting_long_widens_the_window_before_its_answer_is_back():
    window = InFlightWindow(pace=10, cap=64)
    assert window.observe(oldest_wait=1.8) == 28  # 10/s x 1.8 s x 1.5 + 1; the 1 s estimate would say 16
    assert window.observe(oldest_wait=30.0) == 31  # a straggler counts for at most twice the estimate
    assert window.observe(oldest_wait=0.0) == 16


def test_the_cap_holds_whatever_the_latency():
    assert settle(InFlightWindow(pace=10, cap=64), 30.0) == 64
    assert settle(InFlightWindow(pace=10, cap=4), 3.0) == 4


def test_faster_answers_shrink_the_window():
    window = InFlightWindow(pace=10, cap=64)
    assert settle(window, 3.0) == 46
    assert settle(window, 0.2) == 4


def test_a_pushback_halves_the_window_once_per_window_then_it_grows_back():
    window = InFlightWindow(pace=10, cap=64)
    settle(window, 2.0)
    assert window.observe(pushbacks=3) == 15  # 31 -> half
    assert window.observe(pushbacks=1) == 15  # the requests already in flight may be refused too: no second cut
    assert window.observe(answers=15, answer_seconds=30.0) == 16  # a window of clean answers: one more
    assert window.observe(pushbacks=1) == 8  # and a new pushback cuts again
    assert window.observe(pushbacks=1) == 8
    for _ in range(600):  # about one more per window of answers: 8 + 9 + ... + 30 answers
        window.observe(answers=1, answer_seconds=2.0)
    assert window.size == 31  # additive increase back to the need


def test_pushbacks_never_close_the_window():
    window = InFlightWindow(pace=10, cap=64)
    for _ in range(50):
        window.observe(answers=1, answer_seconds=1.0, pushbacks=1)
    assert window.size == 1


def test_the_progress_line_names_the_window():
    assert InFlightWindow(pace=10, cap=64).describe() == "window 16 in flight (answers in 1.00 s)"


@pytest.mark.parametrize(("pace", "cap"), [(0, 4), (-1, 4), (10, 0)])
def test_nonsense_is_refused(pace, cap):
    with pytest.raises(ValueError):
        InFlightWindow(pace=pace, cap=cap)
