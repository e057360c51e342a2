"""Every Airflow Connection id the project uses, defined once (public: the sandbox, the README and
operators' secrets backends create Connections under these ids). No imports, safe anywhere."""

APP_BLUE = "app_blue"
APP_GREEN = "app_green"
APP_ROUTER = "app_router"
HAPROXY = "haproxy_default"
PROMETHEUS = "prometheus_default"
REDIS = "redis_default"
POSTGRES = "postgres_default"
FLAGD = "flagd_default"
UNLEASH = "unleash_default"
SMOKE_WEBHOOK = "smoke_webhook"
# The cutover's own notifications (stage transitions, gate decisions, rollbacks): a Slack-compatible webhook.
CUTOVER_NOTIFICATIONS = "cutover_notifications"
# Alertmanager's API (v2): critical alerts as a gate input, stage 4's routing check (cutover_kit.hooks.alertmanager).
ALERTMANAGER = "alertmanager_default"
# Error tracking (Sentry's events API, or the sandbox's receiver): cutover_kit.hooks.error_tracking.
ERROR_TRACKING = "error_tracking_default"

# The two apps, each reporting on GET /__flags what it evaluates.
APP_CONN_IDS = (APP_BLUE, APP_GREEN)
# What stage 1 proves resolvable before anything moves (the flag store's is checked by its own task).
REQUIRED_CONNECTIONS = (PROMETHEUS, HAPROXY, POSTGRES, REDIS, APP_BLUE, APP_GREEN, APP_ROUTER)
# The cluster of the gateway_api router (a plan's gateway_api.kubernetes_conn_id overrides it).
# The cncf-kubernetes provider's own default id: missing, KubernetesHook uses in-cluster credentials.
KUBERNETES = "kubernetes_default"


def required_connections(router: str, kubernetes_conn_id: str | None = None) -> tuple[str, ...]:
    """REQUIRED_CONNECTIONS for a plan's router: the gateway_api router needs the cluster's
    Connection instead of HAProxy's."""
    if router == "gateway_api":
        return tuple(kubernetes_conn_id or KUBERNETES if conn_id == HAPROXY else conn_id for conn_id in REQUIRED_CONNECTIONS)
    return REQUIRED_CONNECTIONS

# Stages 6 and 7: each color's stage instance (cutover_kit.load.instances says what the extra holds).
APP_BLUE_LOADTEST = "app_blue_loadtest"
APP_GREEN_LOADTEST = "app_green_loadtest"
STAGE_INSTANCE_CONN_IDS = {"blue": APP_BLUE_LOADTEST, "green": APP_GREEN_LOADTEST}

# Each color's structured log lines (cutover_kit.hooks.app_logs): conn_type fs (or generic) with
# extra.path = the log file. Optional: without them a halt says so in one line and carries on.
APP_LOGS_BLUE = "app_logs_blue"
APP_LOGS_GREEN = "app_logs_green"
APP_LOGS_CONN_IDS = {"blue": APP_LOGS_BLUE, "green": APP_LOGS_GREEN}
