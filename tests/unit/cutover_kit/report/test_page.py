"""The HTML report: every value escaped, sections for stages 6/7 only when recorded, lessons
learned filled in with the run's facts, a broken chart named rather than fatal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cutover_kit.report import render
from cutover_kit.report.page import render_html
from cutover_kit.report.lessons import lessons, never_judged
from cutover_kit.report.render import write_report
from tests.unit.cutover_kit.report.png import SIGNATURE
from tests.unit.cutover_kit.report.records import promoted_record, rolled_back_record


def test_every_value_is_escaped():
    record = dataclasses.replace(rolled_back_record(with_series=False),
                                 outcome_reason='<script>alert("x")</script> & more', run_id="run<1>")
    page = render_html(record, {})
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "run&lt;1&gt;" in page


def test_load_test_and_security_appear_only_when_recorded():
    record = rolled_back_record(with_series=False)
    page = render_html(record, {})
    assert "Load test (stage 6)" not in page and "Security findings (stage 7)" not in page
    assert "Not part of this run: stage 6 (load testing)" in page
    with_stages = dataclasses.replace(
        record, load_test={"blue": {"knee_rps": 120}, "green": {"knee_rps": 95}, "verdict": "pass", "reason": "Capacity ok"},
        security={"verdict": "halt", "reason": "Halt before traffic: high zap-10021", "worse_than_blue": [],
                  "blocking": [{"severity": "high", "id": "zap-10021", "color": "green", "where": "GET /", "evidence": "<b>"}]})
    page = render_html(with_stages, {})
    assert "Load test (stage 6)" in page and "Security findings (stage 7)" in page and "&lt;b&gt;" in page
    assert "Not part of this run" not in page


def test_lessons_name_the_halting_gate_detection_and_rollback_times():
    facts = lessons(rolled_back_record())
    text = "\n".join(facts)
    assert facts[0].startswith("Outcome: rolled_back: Rolled back: Halt at 25 %")
    assert "The gate at 25 % halted after 4 polls, 17.500 s after the step's weights were set" in text
    assert "flags -> Rails 60.0 ms and traffic -> blue 90.0 ms after the decision; blue serving alone verified" in text
    assert "drill rolled traffic back in 4.1 ms; the real rollback took 90.0 ms" in text
    assert "Never judged by a gate: 50 %, 100 %, 100 % standby." in text
    assert "Data validation: 34 expectations, 0 failed." in text


def test_a_promoted_run_judged_every_step_it_recorded():
    record = promoted_record()
    assert never_judged(record) == ["50 %", "100 %"]  # the hand-made record skips them
    assert "no real rollback was needed" in "\n".join(lessons(record))


def test_write_report_writes_page_charts_and_record(tmp_path: Path):
    written = write_report(rolled_back_record(), tmp_path)
    assert set(written["charts"]) == {"traffic_share", "error_ratio", "latency", "slo_compliance", "timeline"}
    assert all(Path(p).read_bytes().startswith(SIGNATURE) for p in written["charts"].values())
    page = Path(written["html"]).read_text()
    assert all(f'src="{Path(p).name}"' in page for p in written["charts"].values())
    assert written["chart_errors"] == {} and Path(written["record"]).is_file()


def test_a_chart_that_fails_is_named_and_the_page_is_still_written(tmp_path: Path, monkeypatch):
    def broken(record):
        raise RuntimeError("vega exploded")

    monkeypatch.setitem(render.CHARTS, "latency", broken)
    written = write_report(rolled_back_record(), tmp_path)
    assert written["chart_errors"] == {"latency": "RuntimeError: vega exploded"} and "latency" not in written["charts"]
    assert "chart not rendered: RuntimeError: vega exploded" in Path(written["html"]).read_text()


def test_a_halt_no_gate_decided_says_who_stopped_the_step_and_when():
    record = rolled_back_record(with_series=False)
    smoke = dataclasses.replace(
        record, gates=record.gates[:1],
        rollback=dataclasses.replace(record.rollback, reason="Halt at 25 %: Smoke at 25 %: FAIL write order on app_green"))
    assert "No gate halted: a stage 11 smoke check stopped the run at 25 %, 17.500 s after the step's weights were set." \
        in lessons(smoke)
    data = dataclasses.replace(smoke, rollback=dataclasses.replace(smoke.rollback, reason=(
        "Halt at 25 %: data: orders id 12 acknowledged to a client but not in the database (1 of 4 acknowledged writes "
        "since the step began missing) (found by stage 11, the step's first look at its rows)")))
    assert "No gate halted: stage 11's integrity probe (a lost or corrupted write) stopped the run at 25 %" \
        in "\n".join(lessons(data))
    operator = dataclasses.replace(smoke, rollback=dataclasses.replace(smoke.rollback, emergency_stop="by alice: bad data"))
    assert "No gate halted: an operator's emergency stop stopped the run at 25 %" in "\n".join(lessons(operator))
