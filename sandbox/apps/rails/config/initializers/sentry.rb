# Error reporting to the DSN the environment gives (the sandbox launcher points it at its local
# receiver, sandbox/sentry_receiver.py, project 1 for blue); nothing is sent without one.
# Every event carries the release (SENTRY_RELEASE: the source version the launcher computed) and
# the `color` tag, which is how a reader tells blue's exceptions from green's in one project or many.
if ENV["SENTRY_DSN"].present?
  Sentry.init do |config|
    config.dsn = ENV["SENTRY_DSN"]
    config.release = ENV["SENTRY_RELEASE"].presence
    config.environment = ENV.fetch("SENTRY_ENVIRONMENT", "sandbox")
    config.traces_sample_rate = 0.0
    config.send_default_pii = false
    # The controllers rescue every StandardError into a JSON 500 (ApplicationController), so the
    # Rack middleware never sees them: ApplicationController reports them itself (report_exception).
  end
  Sentry.set_tags(color: Cutover::Env.color)
end
