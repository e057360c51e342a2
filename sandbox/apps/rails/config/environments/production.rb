Rails.application.configure do
  config.cache_classes = true
  config.eager_load = true
  config.consider_all_requests_local = false
  config.public_file_server.enabled = false
  config.log_level = ENV.fetch("RAILS_LOG_LEVEL", "info").to_sym
  # Every line is one JSON object (lograge's request lines and everything else): the request id is
  # a field of the request line, not a tag in front of it (a tag would break the JSON).
  # Unbuffered: a halting step reads this color's lines from the file seconds after they happen.
  $stdout.sync = true
  config.logger = ActiveSupport::Logger.new($stdout).tap do |logger|
    logger.formatter = Cutover::RequestLog::Formatter.new(color: Cutover::Env.color, release: Cutover::RequestLog.release)
  end
  config.active_support.deprecation = :notify
  config.active_support.disallowed_deprecation = :log
  config.active_record.dump_schema_after_migration = false
  config.i18n.fallbacks = true
end
