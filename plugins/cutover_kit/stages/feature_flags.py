"""Stage 3, feature flags (task group ``stage_03_feature_flags``): every flag exists at the
Rails-safe default, written as one absolute FlagState, read back from the plan's store
(``flag_backend``) and confirmed by every app on ``GET /__flags``. Each traffic step then sets its
own flags (stage 10) before it raises the weight."""

from __future__ import annotations

from typing import Any

from cutover_kit.flags.model import FlagState
from cutover_kit.stages._shared import applied_flags, plan_of_run


def ensure_rails_default(plan_task_id: str) -> dict[str, Any]:
    """Every flag at the Rails-safe default, in the store and in every app."""
    plan = plan_of_run(plan_task_id)
    return applied_flags(FlagState.rails(), plan.flag_backend, "Flags at the Rails-safe default")
