# One JSON line per request (lograge's JSON formatter) with the fields both colors share:
# Cutover::RequestLog.line, docs/observability.md "Log lines". Probes are not logged (HAProxy
# checks /readyz twice a second, Prometheus scrapes /metrics every second).
Rails.application.configure do
  config.lograge.enabled = true
  config.lograge.formatter = Lograge::Formatters::Json.new
  config.lograge.ignore_actions = ["OpsController#healthz", "OpsController#readyz", "OpsController#metrics"]
  color = Cutover::Env.color
  release = Cutover::RequestLog.release
  config.lograge.before_format = lambda do |data, payload|
    Cutover::RequestLog.line(data, payload[:request], color: color, release: release)
  end
end
