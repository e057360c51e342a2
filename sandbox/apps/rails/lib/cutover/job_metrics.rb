module Cutover
  # Sidekiq server middleware: counts and times each job, and how long it waited in the queue.
  class JobMetrics
    def initialize(metrics: Metrics, clock: -> { Time.now.to_f })
      @metrics = metrics
      @clock = clock
    end

    def call(worker, job, queue)
      started = @clock.call
      failed = true
      yield
      failed = false
    ensure
      enqueued_at = job["enqueued_at"]
      @metrics.observe_job(queue: queue.to_s, worker: job["class"] || worker.class.name,
                           waited_seconds: enqueued_at ? [started - enqueued_at.to_f, 0].max : nil,
                           seconds: @clock.call - started, failed: failed)
    end
  end
end
