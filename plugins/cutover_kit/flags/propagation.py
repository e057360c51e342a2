"""Did a flag state reach the apps? Pure judging of what each app reports on ``GET /__flags``.

An app's report (sandbox.flag_evaluators.evaluated_flags) says which backend it evaluates, each
feature flag as it evaluates it now, and, when its backend can tell, the rollout and experiment
percentages it has loaded. An app that evaluates no flags (blue: it *is* Rails) serves Rails
whatever the flags say, so it matches any state for the question "who serves", and is reported
as such. No I/O, no Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cutover_kit.flags.model import EXPERIMENT_FLAG, FEATURES, ROLLOUT_FLAG, FlagState, FlagStoreError, feature_flag


class FlagsNotPropagated(FlagStoreError):
    """The store holds the desired state but some app still evaluates something else."""

    def __init__(self, differences: list[str], waited_seconds: float) -> None:
        self.differences = differences
        super().__init__(f"apps still differ after {waited_seconds:.1f} s: " + "; ".join(differences))


def app_is_down(report: str) -> bool:
    """A probe error that means nothing listens any more (the process is gone), not a slow app."""
    return "connection refused" in report.lower()


def app_differences(desired: FlagState, backend: str, reports: Mapping[str, Mapping[str, Any] | str]) -> list[str]:
    """One line per app and flag that does not evaluate as `desired`; [] when every app agrees.

    `reports` maps an app name to its /__flags JSON, or to a string saying why there is none.
    """
    lines: list[str] = []
    for app, report in reports.items():
        if isinstance(report, str):
            # An app whose process is gone serves nothing, so it cannot serve new code: for the
            # Rails direction (rollback) that is not a difference; for any other state it is.
            if not (desired.all_rails and app_is_down(report)):
                lines.append(f"{app}: no flag report ({report})")
            continue
        if not report.get("evaluates_flags"):
            if not report.get("serves_rails", False):
                lines.append(f"{app}: evaluates no flags but does not serve Rails")
            continue
        if report.get("backend") != backend:
            lines.append(f"{app}: evaluates flags from backend {report.get('backend')!r}, the cutover writes to {backend!r}")
            continue
        if report.get("provider_status") not in (None, "READY"):
            lines.append(f"{app}: flag provider {report['provider_status']} ({report.get('error') or 'no detail'})")
        features = report.get("features") or {}
        for feature in FEATURES:
            seen = features.get(feature)
            if seen != desired.features[feature]:
                lines.append(f"{app}: {feature_flag(feature)} evaluates {_on(seen)}, want {_on(desired.features[feature])}")
        for name, key, want in ((ROLLOUT_FLAG, "rollout_percent", desired.rollout_percent),
                                (EXPERIMENT_FLAG, "experiment_treatment_percent", desired.experiment_treatment_percent)):
            seen = report.get(key)
            if seen is not None and seen != want:  # None: this backend cannot report it; features decide
                lines.append(f"{app}: {name} loaded at {seen} %, want {want} %")
    return lines


def serving_summary(reports: Mapping[str, Mapping[str, Any] | str]) -> str:
    """'app_blue rails (no flags), app_green rails' style summary for log lines."""
    parts = []
    for app, report in reports.items():
        if isinstance(report, str):
            parts.append(f"{app} unknown")
        elif not report.get("evaluates_flags"):
            parts.append(f"{app} rails (no flags)")
        else:
            on = [feature for feature, value in (report.get("features") or {}).items() if value]
            parts.append(f"{app} {'typescript for ' + '+'.join(on) if on else 'rails'}")
    return ", ".join(parts)


def backend_apps_evaluate(reports: Mapping[str, Mapping[str, Any] | str]) -> str | None:
    """The one flag backend every flag-evaluating app reports; None when none or several do."""
    in_use = {report.get("backend") for report in reports.values()
              if not isinstance(report, str) and report.get("evaluates_flags")}
    return in_use.pop() if len(in_use) == 1 else None


def choose_flag_backend(plan_backend: str | None, given_backend: str | None,
                        reports_of: Callable[[], Mapping[str, Mapping[str, Any] | str]]) -> tuple[str | None, str]:
    """Which flag store a rollback outside the plan's tasks flips, and why, in this order:
    the run's plan, else the backend the caller was given (a DAG param), else the one the apps
    report they evaluate (asked only then). (None, why) when none of them tells: writing a
    guessed store would change flags no app reads while reporting a verified rollback."""
    if plan_backend:
        return plan_backend, f"the plan's flag backend {plan_backend!r}"
    if given_backend:
        return given_backend, f"the flag backend given to the task ({given_backend!r})"
    reports = reports_of()
    in_use = backend_apps_evaluate(reports)
    if in_use:
        return in_use, f"the flag backend the apps report they evaluate ({in_use!r})"
    return None, f"no plan, no flag backend given, and the apps name no single backend ({_backends_of(reports)})"


def _backends_of(reports: Mapping[str, Mapping[str, Any] | str]) -> str:
    return ", ".join(
        f"{app}: {report if isinstance(report, str) else report.get('backend') if report.get('evaluates_flags') else 'no flags'}"
        for app, report in reports.items()
    ) or "no apps"


def _on(value: Any) -> str:
    return "missing" if value is None else ("on" if value else "off")
