# One JSON-ish line per request instead of Rails' multi-line logs; probes are not logged
# (HAProxy checks /readyz twice a second, Prometheus scrapes /metrics every second).
Rails.application.configure do
  config.lograge.enabled = true
  config.lograge.ignore_actions = ["OpsController#healthz", "OpsController#readyz", "OpsController#metrics"]
end
