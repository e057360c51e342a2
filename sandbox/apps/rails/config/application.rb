require_relative "boot"

# Only the frameworks this API uses: no views, mailers, Active Storage or asset pipeline.
require "rails"
require "active_model/railtie"
require "active_job/railtie"
require "active_record/railtie"
require "action_controller/railtie"
require "action_cable/engine"

Bundler.require(*Rails.groups)

require_relative "../lib/cutover"

module SandboxRails
  class Application < Rails::Application
    config.load_defaults 6.1
    config.api_only = true

    # The legacy schema stores timestamps without time zone, written in UTC by Rails.
    config.time_zone = "UTC"
    config.active_record.default_timezone = :utc
    # The schema is owned by include/sql (bootstrap + expand/contract migrations), not by this app.
    config.active_record.dump_schema_after_migration = false
    config.active_record.maintain_test_schema = false


    # Puma's threads plus Action Cable's worker pool each need a database connection.
    config.action_cable.worker_pool_size = Cutover::Env.cable_workers
    config.action_cable.mount_path = "/cable"
    # Clients are loopback scripts and services, not browsers with an Origin to check.
    config.action_cable.disable_request_forgery_protection = true

    # No cookies or sessions are used (API only); a per-boot key is enough unless one is given.
    config.secret_key_base = ENV.fetch("SECRET_KEY_BASE") { SecureRandom.hex(64) }

    config.middleware.insert_before 0, Cutover::Envelope
    # Content-Length instead of chunked answers, like the other color (and cheaper for HAProxy).
    config.middleware.insert_after Cutover::Envelope, Rack::ContentLength
  end
end
