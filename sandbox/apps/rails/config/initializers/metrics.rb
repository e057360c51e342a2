# The web process owns tmp/metrics/web; the Sidekiq process sets up its own in sidekiq.rb.
# config.ru precreates the API routes' series once the routes are drawn.
unless Sidekiq.server?
  Cutover::Metrics.setup("web")
  Cutover::Metrics.info(color: Cutover::Env.color, runtime: "ruby", version: RUBY_VERSION, rails: Rails.version)
end
