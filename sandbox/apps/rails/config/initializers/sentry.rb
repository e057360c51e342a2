# Error reporting only when a DSN is configured; the sandbox has no Sentry by default.
if ENV["SENTRY_DSN"].present?
  Sentry.init do |config|
    config.dsn = ENV["SENTRY_DSN"]
    config.environment = "sandbox-#{Cutover::Env.color}"
    config.traces_sample_rate = 0.0
  end
end
