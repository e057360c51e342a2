require "fileutils"
require "prometheus/client"
require "prometheus/client/formats/text"

module Cutover
  # Prometheus metrics under the names a Ruby service usually exports (they differ from green's
  # on purpose: the plan's per-color metric templates map each onto the gate's SLIs).
  #
  # prometheus-client-mmap writes every sample to a per-process mmap file. The web process (Puma)
  # and the worker (Sidekiq) each own a directory and wipe it at boot, so a crashed process's
  # counters do not linger; GET /metrics renders both directories. The target's labels
  # (job="apps", color) come from Prometheus' scrape config, so no color label is repeated here
  # except on app_info.
  module Metrics
    # Fine between 1 and 50 ms, where this app's requests land (2-10 ms here), coarse above.
    LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
                       0.3, 0.5, 0.75, 1, 2, 5].freeze
    # Jobs wait for the queue in milliseconds when the worker keeps up, seconds when it does not.
    JOB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].freeze
    ROLES = %w[web worker].freeze

    class << self
      attr_reader :role, :registry

      # Call once per process, before any metric is touched; role is "web" or "worker".
      def setup(role, env = ENV)
        raise ArgumentError, "metrics role must be one of #{ROLES.join(', ')}, got #{role.inspect}" unless ROLES.include?(role)

        @role = role
        dir = Env.metrics_dir(role, env)
        FileUtils.mkdir_p(dir)
        Prometheus::Client.configure { |config| config.multiprocess_files_dir = dir }
        Prometheus::Client.cleanup!
        Prometheus::Client.reinitialize_on_pid_change(force: true)
        @registry = Prometheus::Client::Registry.new
        role == "web" ? define_web_metrics : define_worker_metrics
        self
      end

      def dir(role) = Env.metrics_dir(role)

      # --- web (Puma) -------------------------------------------------------------------------
      # Memory and CPU under the standard process collector's names (prom-client and the Python
      # client export them too). The worker's carry process="worker", so the two processes of blue
      # are two series that add up to the color's total (the gate compares colors' totals: green is
      # one Node process running its job worker, blue is Puma plus Sidekiq). CPU is a counter,
      # advanced by the CPU the process used since it was last counted.
      def define_process_metrics(name, labels)
        @process_labels = labels
        @rss = registry.gauge(:process_resident_memory_bytes, "Resident memory of the #{name} process", {}, :livesum)
        @cpu = registry.counter(:process_cpu_seconds_total, "User and system CPU time of the #{name} process")
        @cpu_counted = 0.0
        @cpu_lock = Mutex.new
      end

      def resident_bytes
        File.read("/proc/self/statm").split[1].to_i * 4096
      rescue SystemCallError
        nil
      end

      def process_cpu_seconds = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)

      # The worker has no scrape of its own (GET /metrics is the web process's): a thread counts
      # its memory and CPU every `interval` seconds.
      def sample_process(interval: 1.0)
        Thread.new do
          loop do
            refresh_process(rss_bytes: resident_bytes, cpu_seconds: process_cpu_seconds)
            sleep interval
          end
        end
      end

      def refresh_process(rss_bytes:, cpu_seconds:)
        @rss.set(@process_labels, rss_bytes) unless rss_bytes.nil?
        count_cpu(cpu_seconds) unless cpu_seconds.nil?
      end

      def define_web_metrics
        @requests = registry.counter(:http_server_requests_total,
                                     "HTTP requests answered, by status code, method and Rails route")
        @duration = registry.histogram(:http_server_request_duration_seconds,
                                       "Time from request received to response ready, injected latency included",
                                       {}, LATENCY_BUCKETS)
        @enqueue_failures = registry.counter(:sidekiq_enqueue_failures_total,
                                             "Jobs the web process could not push to Redis")
        @queue_latency = registry.gauge(:sidekiq_queue_latency_seconds,
                                        "Age of the oldest job waiting in the queue, read from Redis at scrape time",
                                        {}, :max)
        @queue_size = registry.gauge(:sidekiq_queue_size, "Jobs waiting in the queue, at scrape time", {}, :max)
        @cable_connections = registry.gauge(:actioncable_connections, "Open Action Cable WebSocket connections",
                                            {}, :livesum)
        define_process_metrics("web", {})
        @info = registry.gauge(:app_info, "Always 1; identifies the color, runtime and versions of this app",
                               {}, :max)
      end

      def info(labels) = @info.set(labels, 1)

      # rate() cannot see the 0 -> 1 step of a series that appears at 1: start every API route's
      # success and 500 series at 0 so the first error is visible to the error-ratio rules.
      def precreate(routes)
        routes.each do |route|
          [route[:success_code], 500].each do |code|
            @requests.increment({ code: code.to_s, method: route[:method], path: route[:path] }, 0)
          end
          @duration.get(method: route[:method], path: route[:path])
        end
      end

      def observe_request(method:, path:, code:, seconds:)
        @requests.increment(code: code.to_s, method: method, path: path)
        @duration.observe({ method: method, path: path }, seconds)
      end

      def enqueue_failed(worker) = @enqueue_failures.increment(worker: worker)

      # Values only known at scrape time (Redis, Action Cable, /proc).
      def refresh(queues: {}, cable_connections: nil, rss_bytes: nil, cpu_seconds: nil)
        queues.each do |name, stats|
          @queue_latency.set({ queue: name }, stats.fetch(:latency))
          @queue_size.set({ queue: name }, stats.fetch(:size))
        end
        @cable_connections.set({}, cable_connections) unless cable_connections.nil?
        refresh_process(rss_bytes: rss_bytes, cpu_seconds: cpu_seconds)
      end

      # Two scrapes at once (Puma threads) must not count the same CPU time twice.
      def count_cpu(cpu_seconds)
        @cpu_lock.synchronize do
          used = cpu_seconds - @cpu_counted
          next unless used.positive?

          @cpu.increment(@process_labels, used)
          @cpu_counted = cpu_seconds
        end
      end

      # --- worker (Sidekiq) -------------------------------------------------------------------
      def define_worker_metrics
        @jobs_processed = registry.counter(:sidekiq_jobs_processed_total, "Jobs that ran to completion")
        @jobs_failed = registry.counter(:sidekiq_jobs_failed_total, "Jobs that raised (Sidekiq retries them)")
        @job_duration = registry.histogram(:sidekiq_job_duration_seconds, "Time a job ran", {}, JOB_BUCKETS)
        @job_queue_latency = registry.histogram(:sidekiq_job_queue_latency_seconds,
                                                "Time from enqueued to started, per job", {}, JOB_BUCKETS)
        define_process_metrics("worker", { process: "worker" })
      end

      def precreate_jobs(queue:, worker:)
        labels = { queue: queue, worker: worker }
        @jobs_processed.increment(labels, 0)
        @jobs_failed.increment(labels, 0)
      end

      def observe_job(queue:, worker:, waited_seconds:, seconds:, failed:)
        labels = { queue: queue, worker: worker }
        (failed ? @jobs_failed : @jobs_processed).increment(labels)
        @job_duration.observe(labels, seconds)
        @job_queue_latency.observe(labels, waited_seconds) if waited_seconds
      end

      # --- exposition -------------------------------------------------------------------------
      def exposition
        ROLES.map { |name| dir(name) }.select { |path| File.directory?(path) }
             .map { |path| Prometheus::Client::Formats::Text.marshal_multiprocess(path) }.join
      end

      def content_type = Prometheus::Client::Formats::Text::CONTENT_TYPE
    end
  end
end
