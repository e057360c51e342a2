# Probes, metrics and the API document: never subject to injected faults.
class OpsController < ApplicationController
  OPENAPI = Rails.root.join("config/openapi.json")

  def healthz
    render json: { status: "alive", color: color }
  end

  # Ready = the database answers. Redis is not part of it: a Redis outage delays confirmations
  # (the orders are still written) and must not take this app out of the router.
  def readyz
    ActiveRecord::Base.connection.select_value("SELECT 1")
    render json: { status: "ready", color: color }
  end

  def metrics
    Cutover::Metrics.refresh(queues: sidekiq_queues, cable_connections: ActionCable.server.connections.size,
                             rss_bytes: resident_bytes,
                             cpu_seconds: Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID))
    render plain: Cutover::Metrics.exposition, content_type: Cutover::Metrics.content_type
  end

  def openapi
    @@openapi ||= OPENAPI.read # rubocop:disable Style/ClassVars -- read once, the file never changes at run time
    render plain: @@openapi, content_type: "application/json"
  end

  private

  # Queue latency and size from Redis; nothing (the gauges keep their last value) if Redis is down.
  def sidekiq_queues
    Sidekiq::Queue.all.to_h { |queue| [queue.name, { latency: queue.latency, size: queue.size }] }
                  .reverse_merge("default" => { latency: 0.0, size: 0 })
  rescue Redis::BaseError => error
    Rails.logger.warn("metrics: sidekiq queues unreadable: #{error.class}: #{error.message}")
    {}
  end

  def resident_bytes
    File.read("/proc/self/statm").split[1].to_i * 4096
  rescue SystemCallError
    nil
  end
end
