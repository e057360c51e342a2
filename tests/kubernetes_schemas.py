"""Validators for the Kubernetes objects this repository writes or sends, offline.

Core kinds go through kubernetes-validate (the Kubernetes OpenAPI schemas it ships, strict: an
unknown field is an error). The Gateway API kinds, which it lacks, use the vendored v1 schemas in
deploy/kubernetes/schemas/ (source and version in their $comment), with ObjectMeta resolved from
kubernetes-validate's own definitions, through jsonschema.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

REPO_ROOT = Path(__file__).resolve().parents[1]
GATEWAY_SCHEMAS = REPO_ROOT / "deploy" / "kubernetes" / "schemas"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
#: The Kubernetes version the manifests are checked against (kubernetes-validate's newest).
KUBERNETES_VERSION = kubernetes_validate.latest_version()


@lru_cache(maxsize=None)
def _definitions_registry() -> Registry:
    definitions = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/_definitions.json", KUBERNETES_VERSION)
    return Resource.from_contents(definitions) @ Registry()


def gateway_schema(kind: str) -> dict[str, Any]:
    return json.loads((GATEWAY_SCHEMAS / f"{kind.lower()}-gateway-v1.json").read_text())


def gateway_validator(kind: str, partial: bool = False) -> jsonschema.protocols.Validator:
    """`partial`: a merge-patch body, whose top level may leave out what it does not change."""
    schema = gateway_schema(kind)
    if partial:
        schema = copy.deepcopy(schema)
        schema.pop("required", None)
    return jsonschema.Draft202012Validator(schema, registry=_definitions_registry())


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Every problem of one manifest, "" when none: path and message per line."""
    if document.get("apiVersion") == GATEWAY_API_VERSION:
        validator = gateway_validator(document["kind"])
        return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{error.json_path}: {error.message} (Kubernetes {error.version})"]
    return []


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: what the API server makes of a merge-patch body."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
