"""Stage 2's migration as a KubernetesPodOperator: rendered with dry_run() (no cluster), the pod runs
the project's migration in the pinned image, with the database DSN from a Secret and nothing
secret in the spec; the spec is a valid Pod for the Kubernetes API (kubernetes-validate)."""

from __future__ import annotations

import re

import pytest
import yaml
from kubernetes.client import ApiClient

from cutover_kit.stages.database_preparation import migration_pod_operator
from tests.kubernetes_schemas import schema_errors

IMAGE = "cutover/airflow:3.2.2-cutover1"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def rendered(capsys, **kwargs) -> dict:
    migration_pod_operator(image=IMAGE, **kwargs).dry_run()
    # Airflow's own log lines ("Creating pod ...") share stdout with the printed YAML.
    lines = [line for line in capsys.readouterr().out.splitlines() if not LOG_LINE.match(line)]
    return yaml.safe_load("\n".join(lines))


def test_dry_run_renders_the_expand_pod(capsys):
    pod = rendered(capsys)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "cutover_kit.db.migrate_job"] and container["args"] == ["expand"]
    env = {item["name"]: item for item in container["env"]}
    assert env["PYTHONPATH"]["value"] == "/opt/airflow:/opt/airflow/plugins"
    assert env["CUTOVER_DATABASE_DSN"]["value_from"]["secret_key_ref"] == {"name": "cutover-database", "key": "dsn"}
    assert "value" not in env["CUTOVER_DATABASE_DSN"]  # the DSN never sits in the spec
    assert pod["metadata"]["namespace"] == "airflow" and pod["metadata"]["name"].startswith("cutover-migration-expand")
    assert container["security_context"]["allow_privilege_escalation"] is False
    assert pod["spec"]["security_context"]["run_as_non_root"] is True
    assert pod["spec"]["active_deadline_seconds"] == 1800


def test_backfill_and_another_secret(capsys):
    pod = rendered(capsys, step="backfill", secret_name="prod-db", secret_key="url", namespace="jobs")
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["backfill"] and pod["metadata"]["namespace"] == "jobs"
    dsn = next(item for item in container["env"] if item["name"] == "CUTOVER_DATABASE_DSN")
    assert dsn["value_from"]["secret_key_ref"] == {"name": "prod-db", "key": "url"}


def test_the_pod_is_a_valid_kubernetes_pod():
    operator = migration_pod_operator(image=IMAGE)
    pod = ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))
    assert schema_errors(pod) == []
    assert schema_errors({**pod, "spec": {**pod["spec"], "activeDeadlineSeconds": "soon"}}) != []  # the check bites


@pytest.mark.parametrize("kwargs, message", [
    ({"step": "contract", "image": IMAGE}, "migration step must be one of expand, backfill; got 'contract'"),
    ({"image": "cutover/airflow"}, "migration image must carry a tag or digest; got 'cutover/airflow'"),
    ({"image": "registry:5000/cutover/airflow"}, "must carry a tag or digest"),
])
def test_bad_input_is_refused_before_any_operator_exists(kwargs, message):
    with pytest.raises(ValueError, match=message):
        migration_pod_operator(**kwargs)


def test_a_digest_pins_the_image_too():
    operator = migration_pod_operator(image="cutover/airflow@sha256:" + "ab" * 32, task_id="expand_by_digest")
    assert operator.task_id == "expand_by_digest"
