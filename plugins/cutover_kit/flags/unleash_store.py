"""UnleashFlagStore: the cutover's flags in an Unleash server (6.x), through its admin API.

How a FlagState is laid out in Unleash (project and environment from Connection unleash_default):

- ``green.feature.<area>``: the environment is on or off; one strategy, ours, serves everyone
  (flexibleRollout 100 %). Off = Rails.
- ``green.rollout``: the environment is always on, with exactly two strategies of ours (Unleash ORs
  strategies): "via router" (100 % of requests whose context field ``viaRouter`` is ``true``) and
  "direct rollout" (flexibleRollout by ``userId`` at ``rollout_percent``).
- ``experiment.order_summary``: the environment is always on; one strategy of ours carries the
  variants ``control`` (weightType variable) and ``treatment`` (fix, weight = percent x 10, of
  1000), both sticky by ``userId``.

Unleash assigns strategy ids itself, so our strategies are recognised by their title
("cutover: ..."): a repeated write updates them in place (PUT to their id) instead of adding
more, and deletes any strategy that is not ours, since it would change who sees green. read()
maps the server's state back to a FlagState and raises FlagStoreError, naming the flag, for
anything that is not exactly that layout (a strategy someone added by hand, a disabled rollout,
odd weights...). The mapping (``desired_layout``, ``state_from_features``) is pure and unit
tested with payloads recorded from unleash-server 6.10; the class only adds HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from cutover_kit.flags.model import (
    EXPERIMENT_FLAG,
    EXPERIMENT_VARIANTS,
    FEATURES,
    ROLLOUT_FLAG,
    FlagState,
    FlagStoreError,
    feature_flag,
)

log = logging.getLogger(__name__)

VIA_ROUTER_FIELD = "viaRouter"  # custom context field the apps set per request ("true"/"false")
STICKINESS = "userId"
TITLE_PREFIX = "cutover: "
EVERYONE = TITLE_PREFIX + "everyone"
VIA_ROUTER = TITLE_PREFIX + "via router"
DIRECT_ROLLOUT = TITLE_PREFIX + "direct rollout"
EXPERIMENT = TITLE_PREFIX + "experiment"
FLAG_NAMES: tuple[str, ...] = (*(feature_flag(name) for name in FEATURES), ROLLOUT_FLAG, EXPERIMENT_FLAG)
FLAG_TYPES = {ROLLOUT_FLAG: "release", EXPERIMENT_FLAG: "experiment"}  # features: "release" too
FLAG_DESCRIPTIONS = {
    ROLLOUT_FLAG: "Cutover: on for requests routed to green; for direct requests on for rollout_percent of user ids.",
    EXPERIMENT_FLAG: "Cutover A/B experiment: variants control/treatment, sticky by user id.",
}
VARIANT_WEIGHT_TOTAL = 1000  # Unleash variant weights are per mille


# --------------------------------------------------------------------------------- pure mapping


@dataclass(frozen=True)
class FlagLayout:
    """What one flag must look like in the environment: on/off and our strategies by title."""

    name: str
    enabled: bool
    strategies: Mapping[str, dict[str, Any]]  # title -> strategy body for the admin API


def _rollout(percent: int, stickiness: str, group: str) -> dict[str, str]:
    # Unleash stores strategy parameters as strings.
    return {"rollout": str(percent), "stickiness": stickiness, "groupId": group}


def _strategy(title: str, parameters: dict[str, str], constraints: list[dict[str, Any]] | None = None,
              variants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": "flexibleRollout", "title": title, "disabled": False, "parameters": parameters,
            "constraints": constraints or [], "variants": variants or [], "segments": []}


def experiment_variants(treatment_percent: int) -> list[dict[str, Any]]:
    """control takes what treatment leaves (Unleash requires one "variable" variant)."""
    treatment = treatment_percent * VARIANT_WEIGHT_TOTAL // 100
    return [
        {"name": "control", "weight": VARIANT_WEIGHT_TOTAL - treatment, "weightType": "variable",
         "stickiness": STICKINESS},
        {"name": "treatment", "weight": treatment, "weightType": "fix", "stickiness": STICKINESS},
    ]


def desired_layout(state: FlagState) -> dict[str, FlagLayout]:
    """Flag name -> the exact Unleash layout of `state` (pure)."""
    layouts = {
        feature_flag(name): FlagLayout(feature_flag(name), on, {
            EVERYONE: _strategy(EVERYONE, _rollout(100, "default", feature_flag(name))),
        })
        for name, on in state.features.items()
    }
    via_router = {"contextName": VIA_ROUTER_FIELD, "operator": "IN", "values": ["true"],
                  "caseInsensitive": False, "inverted": False}
    layouts[ROLLOUT_FLAG] = FlagLayout(ROLLOUT_FLAG, True, {
        VIA_ROUTER: _strategy(VIA_ROUTER, _rollout(100, "default", ROLLOUT_FLAG), constraints=[via_router]),
        DIRECT_ROLLOUT: _strategy(DIRECT_ROLLOUT, _rollout(state.rollout_percent, STICKINESS, ROLLOUT_FLAG)),
    })
    layouts[EXPERIMENT_FLAG] = FlagLayout(EXPERIMENT_FLAG, True, {
        EXPERIMENT: _strategy(EXPERIMENT, _rollout(100, STICKINESS, EXPERIMENT_FLAG),
                              variants=experiment_variants(state.experiment_treatment_percent)),
    })
    return layouts


def _environment(feature: Mapping[str, Any], environment: str) -> Mapping[str, Any]:
    for env in feature.get("environments") or []:
        if env.get("name") == environment:
            return env
    names = ", ".join(str(env.get("name")) for env in feature.get("environments") or []) or "none"
    raise FlagStoreError(f"{feature.get('name')}: no environment {environment!r} in Unleash (flag has: {names})")


def _normal_constraint(constraint: Mapping[str, Any]) -> tuple:
    return (constraint.get("contextName"), constraint.get("operator"), tuple(constraint.get("values") or ()),
            bool(constraint.get("caseInsensitive")), bool(constraint.get("inverted")))


def _normal_variant(variant: Mapping[str, Any]) -> tuple:
    return (variant.get("name"), int(variant.get("weight", -1)), variant.get("weightType"), variant.get("stickiness"))


def strategy_matches(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True if a strategy read from Unleash has exactly the wanted effect (ids and order ignored)."""
    return (found.get("name") == wanted["name"]
            and not found.get("disabled")
            and dict(found.get("parameters") or {}) == wanted["parameters"]
            and sorted(map(_normal_constraint, found.get("constraints") or [])) ==
            sorted(map(_normal_constraint, wanted["constraints"]))
            and sorted(map(_normal_variant, found.get("variants") or [])) ==
            sorted(map(_normal_variant, wanted["variants"]))
            and not found.get("segments"))


def _strategies_by_title(flag: str, env: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    by_title: dict[str, Mapping[str, Any]] = {}
    for strategy in env.get("strategies") or []:
        title = strategy.get("title") or ""
        if not title.startswith(TITLE_PREFIX):
            raise FlagStoreError(f"{flag}: strategy {strategy.get('name')!r} (title {title or 'none'!r}, id "
                                 f"{strategy.get('id')}) was not set by the cutover; it would change who is served "
                                 f"by green, so the state cannot be mapped (writing the flags again removes it)")
        if title in by_title:
            raise FlagStoreError(f"{flag}: strategy {title!r} appears twice")
        by_title[title] = strategy
    return by_title


def _percent(flag: str, raw: Any) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise FlagStoreError(f"{flag}: rollout {raw!r} is not a whole percentage") from None
    if not 0 <= value <= 100:
        raise FlagStoreError(f"{flag}: rollout {value} is outside 0-100")
    return value


def _check_layout(flag: str, env: Mapping[str, Any], wanted: FlagLayout) -> dict[str, Mapping[str, Any]]:
    """Our strategies by title; raises unless they are exactly the wanted titles."""
    found = _strategies_by_title(flag, env)
    missing = sorted(set(wanted.strategies) - set(found))
    extra = sorted(set(found) - set(wanted.strategies))
    if missing or extra:
        raise FlagStoreError(f"{flag}: strategies do not match the cutover's layout (missing: {missing or 'none'}, "
                             f"unexpected: {extra or 'none'})")
    return found


def state_from_features(features: Mapping[str, Mapping[str, Any]], environment: str) -> FlagState:
    """FlagState from admin-API feature payloads (flag name -> GET .../features/<name>); pure.

    Raises FlagStoreError naming the flag for a missing flag or anything it cannot map exactly.
    """
    missing = [name for name in FLAG_NAMES if name not in features]
    if missing:
        raise FlagStoreError(f"flags missing in Unleash: {', '.join(missing)}")
    reference = desired_layout(FlagState.rails())

    on: dict[str, bool] = {}
    for name in FEATURES:
        flag = feature_flag(name)
        env = _environment(features[flag], environment)
        strategies = _check_layout(flag, env, reference[flag])
        if not strategy_matches(strategies[EVERYONE], reference[flag].strategies[EVERYONE]):
            raise FlagStoreError(f"{flag}: strategy {EVERYONE!r} does not serve 100 % of requests: "
                                 f"{_describe(strategies[EVERYONE])}")
        on[name] = bool(env.get("enabled"))

    env = _environment(features[ROLLOUT_FLAG], environment)
    if not env.get("enabled"):
        raise FlagStoreError(f"{ROLLOUT_FLAG}: disabled in environment {environment!r}; the cutover keeps it "
                             f"enabled (routed requests on, direct requests at the rollout percentage)")
    strategies = _check_layout(ROLLOUT_FLAG, env, reference[ROLLOUT_FLAG])
    if not strategy_matches(strategies[VIA_ROUTER], reference[ROLLOUT_FLAG].strategies[VIA_ROUTER]):
        raise FlagStoreError(f"{ROLLOUT_FLAG}: strategy {VIA_ROUTER!r} is not 100 % of requests with "
                             f"{VIA_ROUTER_FIELD}=true: {_describe(strategies[VIA_ROUTER])}")
    direct = strategies[DIRECT_ROLLOUT]
    rollout_percent = _percent(ROLLOUT_FLAG, (direct.get("parameters") or {}).get("rollout"))
    expected = _strategy(DIRECT_ROLLOUT, _rollout(rollout_percent, STICKINESS, ROLLOUT_FLAG))
    if not strategy_matches(direct, expected):
        raise FlagStoreError(f"{ROLLOUT_FLAG}: strategy {DIRECT_ROLLOUT!r} is not a plain rollout by {STICKINESS}: "
                             f"{_describe(direct)}")

    env = _environment(features[EXPERIMENT_FLAG], environment)
    if not env.get("enabled"):
        raise FlagStoreError(f"{EXPERIMENT_FLAG}: disabled in environment {environment!r}; the cutover keeps it "
                             f"enabled with variants {'/'.join(EXPERIMENT_VARIANTS)}")
    strategies = _check_layout(EXPERIMENT_FLAG, env, reference[EXPERIMENT_FLAG])
    experiment = strategies[EXPERIMENT]
    treatment_percent = _treatment_percent(experiment)
    expected = _strategy(EXPERIMENT, _rollout(100, STICKINESS, EXPERIMENT_FLAG),
                         variants=experiment_variants(treatment_percent))
    if not strategy_matches(experiment, expected):
        raise FlagStoreError(f"{EXPERIMENT_FLAG}: strategy {EXPERIMENT!r} is not 100 % of users with variants "
                             f"control/treatment sticky by {STICKINESS}: {_describe(experiment)}")
    return FlagState(on, rollout_percent, treatment_percent)


def _treatment_percent(strategy: Mapping[str, Any]) -> int:
    variants = {variant.get("name"): variant for variant in strategy.get("variants") or []}
    if set(variants) != set(EXPERIMENT_VARIANTS):
        raise FlagStoreError(f"{EXPERIMENT_FLAG}: variants are {sorted(map(str, variants)) or 'none'}, "
                             f"expected {'/'.join(EXPERIMENT_VARIANTS)}")
    weight = variants["treatment"].get("weight")
    if not isinstance(weight, int) or weight % (VARIANT_WEIGHT_TOTAL // 100) or not 0 <= weight <= VARIANT_WEIGHT_TOTAL:
        raise FlagStoreError(f"{EXPERIMENT_FLAG}: treatment weight {weight!r} of {VARIANT_WEIGHT_TOTAL} is not a "
                             f"whole percentage")
    return weight * 100 // VARIANT_WEIGHT_TOTAL


def _describe(strategy: Mapping[str, Any]) -> str:
    constraints = [f"{c.get('contextName')} {c.get('operator')} {c.get('values')}" for c in strategy.get("constraints") or []]
    variants = [f"{v.get('name')}={v.get('weight')}({v.get('weightType')})" for v in strategy.get("variants") or []]
    return (f"{strategy.get('name')} {dict(strategy.get('parameters') or {})}"
            f"{' disabled' if strategy.get('disabled') else ''}"
            f"{' constraints ' + '; '.join(constraints) if constraints else ''}"
            f"{' variants ' + ', '.join(variants) if variants else ''}"
            f"{' segments ' + str(strategy.get('segments')) if strategy.get('segments') else ''}")


# --------------------------------------------------------------------------------- the store


class UnleashFlagStore:
    """FlagStore on an Unleash server's admin API (admin token; project and environment fixed)."""

    def __init__(self, base_url: str, admin_token: str, project: str = "default", environment: str = "development",
                 timeout_seconds: float = 5.0) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FlagStoreError(f"Unleash URL {base_url!r} is not an http(s)://host[:port] address")
        if not admin_token:
            raise FlagStoreError(f"Unleash at {base_url}: no admin API token given")
        for what, value in (("project", project), ("environment", environment)):
            if not isinstance(value, str) or not value or "/" in value:
                raise FlagStoreError(f"Unleash at {base_url}: {what} {value!r} is not a valid name")
        if not timeout_seconds > 0:
            raise FlagStoreError(f"Unleash at {base_url}: timeout must be > 0 s, got {timeout_seconds!r}")
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.environment = environment
        self.timeout_seconds = timeout_seconds
        self.name = f"unleash {self.base_url} ({project}/{environment})"
        self._session = requests.Session()
        self._session.headers.update({"Authorization": admin_token, "Accept": "application/json"})

    @classmethod
    def from_connection(cls, conn: Any) -> UnleashFlagStore:
        """From an Airflow Connection (unleash_default): host/port (or extra.base_url), password = the
        admin token, extra.project / extra.environment."""
        from cutover_kit import connections
        from cutover_kit.hooks import http_base_url  # no Airflow import: a plain helper

        conn_id = getattr(conn, "conn_id", None) or connections.UNLEASH
        try:
            base_url = http_base_url(conn, conn_id)
        except ValueError as error:
            raise FlagStoreError(f"Connection {conn_id!r}: {error}") from None
        if not conn.password:
            raise FlagStoreError(f"Connection {conn_id!r} has no password: it must hold the Unleash admin API token")
        extra = conn.extra_dejson
        try:
            timeout_seconds = float(extra.get("timeout_seconds", 5.0))
        except (TypeError, ValueError):
            raise FlagStoreError(f"Connection {conn_id!r}: extra.timeout_seconds {extra.get('timeout_seconds')!r} "
                                 f"is not a number") from None
        return cls(base_url, conn.password, project=extra.get("project", "default"),
                   environment=extra.get("environment", "development"), timeout_seconds=timeout_seconds)

    # ----------------------------------------------------------------------------- FlagStore

    def read(self) -> FlagState:
        features = {}
        for flag in FLAG_NAMES:
            feature = self._get_feature(flag)
            if feature is None:
                raise FlagStoreError(f"{self.name}: flag {flag} does not exist (write the flags to create it)")
            features[flag] = feature
        try:
            return state_from_features(features, self.environment)
        except FlagStoreError as error:
            raise FlagStoreError(f"{self.name}: {error}") from None

    def write(self, desired: FlagState) -> None:
        """Create missing flags, then set every flag to `desired` (absolute; only changes what differs).

        Features being switched off go first and features being switched on go last, so that an
        interrupted write leaves at most fewer requests on green's code, never more.
        """
        self._check_environment()
        self._ensure_context_field()
        features = {flag: self._get_feature(flag) or self._create_feature(flag) for flag in FLAG_NAMES}
        layouts = desired_layout(desired)
        feature_flags = [feature_flag(name) for name in FEATURES]
        turning_off = [flag for flag in feature_flags if not layouts[flag].enabled]
        turning_on = [flag for flag in feature_flags if layouts[flag].enabled]
        for flag in (*turning_off, ROLLOUT_FLAG, EXPERIMENT_FLAG, *turning_on):
            self._apply_layout(layouts[flag], _environment(features[flag], self.environment))
        log.info("%s: wrote %s", self.name, desired.describe())

    # ----------------------------------------------------------------------------- helpers

    def _apply_layout(self, layout: FlagLayout, env: Mapping[str, Any]) -> None:
        flag = layout.name
        base = f"/api/admin/projects/{self._q(self.project)}/features/{self._q(flag)}/environments/{self._q(self.environment)}"
        found: dict[str, Mapping[str, Any]] = {}
        strangers = []
        for strategy in env.get("strategies") or []:
            title = strategy.get("title") or ""
            if title in layout.strategies and title not in found:
                found[title] = strategy
            else:
                strangers.append(strategy)  # not ours, or a duplicate of ours
        if not layout.enabled and env.get("enabled"):
            self._call("POST", f"{base}/off")  # off first: the strategies no longer matter then
        for title, wanted in layout.strategies.items():
            if title not in found:
                self._call("POST", f"{base}/strategies", json=wanted)
            elif not strategy_matches(found[title], wanted):
                self._call("PUT", f"{base}/strategies/{self._q(found[title]['id'])}", json=wanted)
        # Removed only once ours are in place: an enabled flag left with no strategy is on for everyone.
        for strategy in strangers:
            log.warning("%s: removing strategy %s (%s, title %r): not part of the cutover's layout", flag,
                        strategy.get("id"), strategy.get("name"), strategy.get("title"))
            self._call("DELETE", f"{base}/strategies/{self._q(strategy['id'])}")
        # On last: Unleash adds a default strategy when enabling an environment that has none.
        if layout.enabled and not env.get("enabled"):
            self._call("POST", f"{base}/on")

    def _get_feature(self, flag: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/api/admin/projects/{self._q(self.project)}/features/{self._q(flag)}",
                              allow=(404,))
        if response.status_code == 404:
            return None
        return self._json(response, flag)

    def _create_feature(self, flag: str) -> dict[str, Any]:
        body = {"name": flag, "type": FLAG_TYPES.get(flag, "release"),
                "description": FLAG_DESCRIPTIONS.get(flag, "Cutover: serve this feature area with green's own code."),
                "impressionData": False}
        response = self._call("POST", f"/api/admin/projects/{self._q(self.project)}/features", json=body, allow=(409,))
        if response.status_code == 409:
            message = self._message(response)
            if "archived" not in message.lower():
                raise FlagStoreError(f"{self.name}: cannot create flag {flag}: {message}")
            # Archived, clients already treat it as off (Rails). The cutover needs every flag to
            # exist, so it comes back (disabled in every environment) and the write sets it.
            log.warning("%s: flag %s was archived; reviving it", self.name, flag)
            self._call("POST", f"/api/admin/projects/{self._q(self.project)}/revive", json={"features": [flag]})
        else:
            log.info("%s: created flag %s", self.name, flag)
        feature = self._get_feature(flag)
        if feature is None:
            raise FlagStoreError(f"{self.name}: flag {flag} was created but cannot be read back")
        return feature

    def _check_environment(self) -> None:
        """The environment must exist and be enabled in the project, before anything changes."""
        response = self._call("GET", f"/api/admin/environments/project/{self._q(self.project)}")
        environments = {env.get("name"): env for env in self._json(response, "environments").get("environments", [])}
        env = environments.get(self.environment)
        if env is None or not env.get("enabled"):
            usable = ", ".join(sorted(str(name) for name, e in environments.items() if e.get("enabled"))) or "none"
            state = "is disabled" if env is not None else "does not exist"
            raise FlagStoreError(f"{self.name}: environment {self.environment!r} {state} in project "
                                 f"{self.project!r} (enabled environments: {usable})")

    def _ensure_context_field(self) -> None:
        """The rollout's constraint needs context field viaRouter; Unleash refuses unknown fields."""
        response = self._call("GET", f"/api/admin/context/{VIA_ROUTER_FIELD}", allow=(404,))
        if response.status_code == 200:
            return
        body = {"name": VIA_ROUTER_FIELD, "stickiness": False,
                "description": "Cutover: true when the request reached green through the router (HAProxy)",
                "legalValues": [{"value": "true"}, {"value": "false"}]}
        self._call("POST", "/api/admin/context", json=body, allow=(409,))  # 409: created meanwhile, fine

    def _call(self, method: str, path: str, json: Any = None, allow: tuple[int, ...] = ()) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._session.request(method, url, json=json, timeout=self.timeout_seconds)
        except requests.Timeout:
            raise FlagStoreError(f"Unleash at {self.base_url} did not answer {method} {path} within "
                                 f"{self.timeout_seconds:g} s") from None
        except requests.RequestException as error:
            reason = "connection refused" if "refused" in str(error).lower() else f"{type(error).__name__}: {error}"
            raise FlagStoreError(f"Unleash at {self.base_url} is unreachable ({reason})") from None
        if response.status_code in (401, 403):
            raise FlagStoreError(f"Unleash at {self.base_url} refused the admin token: HTTP {response.status_code} "
                                 f"on {method} {path}: {self._message(response)}")
        if response.status_code >= 400 and response.status_code not in allow:
            raise FlagStoreError(f"Unleash at {self.base_url}: {method} {path} failed with HTTP "
                                 f"{response.status_code}: {self._message(response)}")
        return response

    @staticmethod
    def _json(response: requests.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise FlagStoreError(f"Unleash answered {response.url} with non-JSON ({what}): "
                                 f"{response.text[:120]!r}") from None
        if not isinstance(body, dict):
            raise FlagStoreError(f"Unleash answered {response.url} with {type(body).__name__}, expected an object")
        return body

    @staticmethod
    def _message(response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200] or response.reason
        if isinstance(body, dict):
            return str(body.get("message") or body.get("details") or body)[:300]
        return str(body)[:300]

    @staticmethod
    def _q(part: str) -> str:
        return quote(str(part), safe="")
