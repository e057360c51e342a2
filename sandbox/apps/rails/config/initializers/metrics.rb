# The web process owns tmp/metrics/web; the Sidekiq process sets up its own in sidekiq.rb.
# config.ru precreates the API routes' series once the routes are drawn.
unless Sidekiq.server?
  Cutover::Metrics.setup("web")
  # The rehearsal result reports these (sandbox/result.py: runtime "ruby 3.1.2 / rails ... / puma ...").
  server = defined?(Puma::Const::PUMA_VERSION) ? { puma: Puma::Const::PUMA_VERSION } : {}
  Cutover::Metrics.info(color: Cutover::Env.color, runtime: "ruby", version: RUBY_VERSION, rails: Rails.version, **server)
end
