require "sidekiq"
require "sidekiq/api" # Sidekiq::Queue, read by GET /metrics

# redis-rb 4.8 warns on every BRPOP Sidekiq 6.4 sends (every 2 s): the calls are fine for 4.x.
Redis.silence_deprecations = true

# Web (client) and worker (server) talk to the same sandbox Redis.
Sidekiq.configure_client do |config|
  config.redis = { url: Cutover::Env.redis_url, network_timeout: 1, pool_timeout: 1 }
end

Sidekiq.configure_server do |config|
  config.redis = { url: Cutover::Env.redis_url, network_timeout: 2 }
  Cutover::Metrics.setup("worker")
  config.server_middleware { |chain| chain.add(Cutover::JobMetrics) }
  config.on(:startup) do
    Cutover::Metrics.precreate_jobs(queue: OrderConfirmationJob.get_sidekiq_options["queue"].to_s,
                                    worker: OrderConfirmationJob.name)
    Cutover::Metrics.sample_process # the worker's memory and CPU, for blue's per-color totals
  end
end
