"""sandbox.traffic.injected_lost_writes: which lost writes a drop_writes fault explains (no database)."""

from __future__ import annotations

from sandbox.traffic import injected_lost_writes

DROP = {"color": "green", "kind": "drop_writes", "start": 100.0, "end": 110.0, "error": None}


def write(order_id, color, t):
    return {"write_id": order_id, "color": color, "t": t, "duration_s": 0.01}


def test_only_the_faulty_colors_writes_inside_its_window_are_explained():
    ledger = [write(1, "green", 99.0), write(2, "green", 101.0), write(3, "blue", 102.0), write(4, "green", 111.0),
              write(5, "green", 105.0)]
    assert injected_lost_writes(ledger, [1, 2, 3, 4], [DROP]) == [2]  # 5 was not lost


def test_an_open_window_runs_to_the_end_and_a_failed_injection_explains_nothing():
    ledger = [write(2, "green", 500.0)]
    assert injected_lost_writes(ledger, [2], [{**DROP, "end": None}]) == [2]
    assert injected_lost_writes(ledger, [2], [{**DROP, "end": None, "error": "refused"}]) == []
    assert injected_lost_writes(ledger, [2], [{**DROP, "kind": "errors", "end": None}]) == []
