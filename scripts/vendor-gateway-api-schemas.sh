#!/usr/bin/env bash
# Regenerates deploy/kubernetes/schemas/*.json: the Gateway API v1 HTTPRoute and Gateway schemas
# that kubernetes-validate does not ship. Source: the npm package @kubernetes-models/gateway-api
# 0.5.1 (MIT), whose models are generated from the CRDs of Gateway API v1.0.0
# (standard-install.yaml and experimental-install.yaml of that release; its package.json lists
# them under crd-generate.input). The newer 2.x of that package ships compiled validators, not
# JSON schemas. Needs npm and node; run by hand, never by make test (offline).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE=@kubernetes-models/gateway-api@0.5.1
OUT=deploy/kubernetes/schemas
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null && tar xzf ./*.tgz)
cat > "$work/extract.js" <<'JS'
// The generated module holds `const schema = {...};` (a JS object literal of the CRD's openAPIV3Schema).
const fs = require("fs");
const [file, out] = process.argv.slice(2);
const text = fs.readFileSync(file, "utf8");
const start = text.indexOf("const schema = ") + "const schema = ".length;
const end = text.indexOf("\n};\n", start) + 2;
fs.writeFileSync(out, JSON.stringify(eval("(" + text.slice(start, end) + ")")));
JS
for kind in HTTPRoute Gateway; do
  node "$work/extract.js" "$work/package/gateway.networking.k8s.io/v1/$kind.js" "$work/$kind.json"
done
python3 - "$work" "$OUT" <<'PY'
import json, sys
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

def to_json_schema(node):
    """OpenAPI's `nullable: true` -> JSON Schema's type [..., "null"]; ObjectMeta -> kubernetes-validate's definitions."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: to_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if node.get("$ref", "").startswith("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"):
        node["$ref"] = OBJECT_META
    return node

for kind in ("HTTPRoute", "Gateway"):
    schema = to_json_schema(json.loads((work / f"{kind}.json").read_text()))
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://gateway-api.sigs.k8s.io/v1.0.0/schemas/{kind.lower()}-gateway-v1.json",
        "$comment": (f"Gateway API v1.0.0, {kind} gateway.networking.k8s.io/v1 (openAPIV3Schema of its CRD), "
                     "taken from the npm package @kubernetes-models/gateway-api 0.5.1 (generated from the v1.0.0 "
                     "standard and experimental install manifests) by scripts/vendor-gateway-api-schemas.sh; "
                     "nullable rewritten as type null, ObjectMeta resolved from kubernetes-validate's definitions."),
        **schema,
    }
    (out / f"{kind.lower()}-gateway-v1.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"{out}/{kind.lower()}-gateway-v1.json")
PY
