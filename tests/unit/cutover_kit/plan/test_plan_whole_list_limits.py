"""The plan's optional whole-list limits (slo.min_..._vs_blue / slo.max_..._vs_blue): unset by
default so every shipped plan keeps its meaning, validated with an error naming the field, kept
through the dict form (XCom)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cutover_kit.plan import DEFAULT_PLANS_DIR, CutoverPlan, PlanError, SLOPolicy, list_plans, load_plan
from cutover_kit.plan.schema import WHOLE_LIST_LIMITS

DEFAULT_DOCUMENT = yaml.safe_load((DEFAULT_PLANS_DIR / "default.yaml").read_text())


def plan_with_slo(tmp_path: Path, **limits: object) -> str:
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document.setdefault("slo", {}).update(limits)
    path = tmp_path / "limits.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_every_limit_is_unset_by_default_and_every_shipped_plan_stays_valid():
    assert all(getattr(SLOPolicy(), name) is None for name in WHOLE_LIST_LIMITS)
    for name in list_plans():
        plan = load_plan(name)
        assert all(getattr(plan.slo, limit) is None for limit in WHOLE_LIST_LIMITS), name


def test_set_limits_load_as_floats_and_survive_the_dict_form(tmp_path):
    plan = load_plan(plan_with_slo(tmp_path, max_memory_ratio_vs_blue=2, min_job_rate_ratio_vs_blue=0.9,
                                   max_db_statement_time_ratio_vs_blue=1.5))
    assert plan.slo.max_memory_ratio_vs_blue == 2.0 and isinstance(plan.slo.max_memory_ratio_vs_blue, float)
    assert plan.slo.min_throughput_ratio_vs_blue is None
    again = CutoverPlan.from_dict(plan.to_dict())
    assert again.slo == plan.slo and again.to_dict()["slo"]["min_throughput_ratio_vs_blue"] is None


@pytest.mark.parametrize("limits, message", [
    ({"max_memory_ratio_vs_blue": 0}, "slo.max_memory_ratio_vs_blue: 0 is less than or equal to the minimum of 0"),
    ({"min_job_rate_ratio_vs_blue": 1.5}, "slo.min_job_rate_ratio_vs_blue: 1.5 is greater than the maximum of 1"),
    ({"min_throughput_ratio_vs_blue": "most"}, "slo.min_throughput_ratio_vs_blue: 'most' is not of type 'number', 'null'"),
    ({"max_job_failure_ratio_delta_vs_blue": -0.01}, "slo.max_job_failure_ratio_delta_vs_blue: -0.01 is less than the minimum of 0"),
    ({"max_cpu_ratio_vs_blue": 2}, "slo: Additional properties are not allowed ('max_cpu_ratio_vs_blue' was unexpected)"),
])
def test_a_bad_limit_is_refused_naming_the_field_before_anything_runs(tmp_path, limits, message):
    with pytest.raises(PlanError) as raised:
        load_plan(plan_with_slo(tmp_path, **limits))
    assert message in str(raised.value)


def test_a_policy_built_in_code_is_validated_the_same_way():
    with pytest.raises(PlanError, match="slo: max_memory_ratio_vs_blue: -1 is less than or equal to the minimum of 0"):
        SLOPolicy(max_memory_ratio_vs_blue=-1)
