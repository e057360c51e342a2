# The sandbox contract every color keeps (sandbox/faults.py, sandbox/traffic.py): fault control, the
# served-by markers, metrics, request validation. Plain Ruby, loaded before Rails boots, so the
# unit tests run without a database or Redis.
module Cutover
  RAILS = "rails"
  FEATURES = %w[users orders].freeze
  LOOPBACK = %w[127.0.0.1 ::1 ::ffff:127.0.0.1].freeze
  MAX_BODY_BYTES = 64 * 1024
  MAX_ADDED_LATENCY_MS = 30_000 # below HAProxy's `timeout server` (35 s): latency must not become 504s
  CRASH_EXIT_CODE = 70 # EX_SOFTWARE, like the Python app: a crash is told apart from a SIGTERM stop
  UNMATCHED_ROUTE = "unmatched" # one label value for every unknown path keeps cardinality bounded
  OPS_PATHS = %w[/healthz /readyz /metrics /__fault /__flags /openapi.json /cable].freeze
end

require_relative "cutover/env"
require_relative "cutover/http_error"
require_relative "cutover/weakness"
require_relative "cutover/fault_state"
require_relative "cutover/capacity_limiter"
require_relative "cutover/body_drift"
require_relative "cutover/params"
require_relative "cutover/metrics"
require_relative "cutover/envelope"
require_relative "cutover/request_log"
require_relative "cutover/job_metrics"

module Cutover
  # This process's injected faults (one per process: Puma runs in single mode).
  @faults = FaultState.new
  # The capacity_limit fault's queue for the product API (Api::BaseController).
  @capacity = CapacityLimiter.new(-> { @faults.snapshot.max_concurrent })
  class << self
    attr_reader :faults, :capacity
  end
end
