require_relative "../test_helper"

class MetricsTest < Minitest::Test
  def test_web_exposition_has_precreated_routes_and_observations
    Cutover::Metrics.setup("web")
    Cutover::Metrics.precreate([{ method: "POST", path: "/api/orders", success_code: 201 }])
    Cutover::Metrics.observe_request(method: "GET", path: "/api/users/:id", code: 200, seconds: 0.004)
    Cutover::Metrics.refresh(queues: { "default" => { latency: 1.5, size: 3 } }, cable_connections: 2)
    text = Cutover::Metrics.exposition
    assert_includes text, 'http_server_requests_total{code="500",method="POST",path="/api/orders"} 0'
    assert_includes text, 'http_server_requests_total{code="201",method="POST",path="/api/orders"} 0'
    assert_includes text, 'http_server_requests_total{code="200",method="GET",path="/api/users/:id"} 1'
    assert_includes text, 'http_server_request_duration_seconds_bucket{le="0.005",method="GET",path="/api/users/:id"} 1'
    assert_includes text, 'http_server_request_duration_seconds_bucket{le="0.0025",method="GET",path="/api/users/:id"} 0'
    assert_includes text, 'sidekiq_queue_latency_seconds{queue="default"} 1.5'
    assert_includes text, "actioncable_connections 2"
  end

  def test_cpu_seconds_count_what_the_process_used_since_the_last_scrape
    Cutover::Metrics.setup("web")
    Cutover::Metrics.refresh(cpu_seconds: 1.25)
    Cutover::Metrics.refresh(cpu_seconds: 2.0)
    Cutover::Metrics.refresh(cpu_seconds: 2.0) # nothing used since: nothing added
    assert_includes Cutover::Metrics.exposition, "process_cpu_seconds_total 2"
  end

  def test_worker_memory_and_cpu_are_their_own_series_beside_the_web_process
    Cutover::Metrics.setup("worker")
    Cutover::Metrics.refresh_process(rss_bytes: 50 * 1024 * 1024, cpu_seconds: 0.5)
    Cutover::Metrics.refresh_process(rss_bytes: 60 * 1024 * 1024, cpu_seconds: 1.5)
    text = Cutover::Metrics.exposition
    assert_includes text, 'process_resident_memory_bytes{process="worker"} 62914560'
    assert_includes text, 'process_cpu_seconds_total{process="worker"} 1.5'
  end

  def test_worker_counts_jobs_processed_and_failed
    Cutover::Metrics.setup("worker")
    Cutover::Metrics.precreate_jobs(queue: "default", worker: "OrderConfirmationJob")
    clock = [100.0, 100.5].cycle
    middleware = Cutover::JobMetrics.new(clock: -> { clock.next })
    job = { "class" => "OrderConfirmationJob", "enqueued_at" => 99.0 }
    middleware.call(nil, job, "default") { :done }
    assert_raises(RuntimeError) { middleware.call(nil, job, "default") { raise "boom" } }
    text = Cutover::Metrics.exposition
    assert_includes text, 'sidekiq_jobs_processed_total{queue="default",worker="OrderConfirmationJob"} 1'
    assert_includes text, 'sidekiq_jobs_failed_total{queue="default",worker="OrderConfirmationJob"} 1'
    assert_includes text, 'sidekiq_job_queue_latency_seconds_sum{queue="default",worker="OrderConfirmationJob"} 2'
  end

  def test_unknown_role_is_refused
    assert_raises(ArgumentError) { Cutover::Metrics.setup("cron") }
  end
end
