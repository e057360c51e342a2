module Cutover
  # Injected faults of this process, shared by all Puma threads (one mutex around every read and
  # write). Puma runs in single mode (see config/puma.rb), so one process holds the whole state.
  # max_concurrent (the capacity_limit fault, stage 6): at most that many API requests at once,
  # the rest queue (0 = no limit); see CapacityLimiter. weakness (the insecure fault, stage 7):
  # one security weakness of Weakness::KINDS, "none" to remove it; see Weakness.
  class FaultState
    FIELDS = %w[error_fraction added_latency_ms crash body_drift max_concurrent weakness].freeze
    MAX_CONCURRENT_LIMIT = 10_000 # above this, no limit on these machines
    Settings = Struct.new(:error_fraction, :added_latency_ms, :body_drift, :max_concurrent, :weakness,
                          keyword_init: true) do
      def as_json(*) = { "error_fraction" => error_fraction, "added_latency_ms" => added_latency_ms,
                         "body_drift" => body_drift, "max_concurrent" => max_concurrent, "weakness" => weakness }
    end

    def self.clean = Settings.new(error_fraction: 0.0, added_latency_ms: 0.0, body_drift: false, max_concurrent: 0,
                                  weakness: "none")

    def initialize(random: Random.new)
      @mutex = Mutex.new
      @settings = self.class.clean
      @random = random
    end

    def snapshot = @mutex.synchronize { @settings.dup }

    def clear = @mutex.synchronize { @settings = self.class.clean }.dup

    # Apply a parsed request (see .parse); fields it leaves out keep their value.
    def update(change)
      @mutex.synchronize do
        @settings.error_fraction = change[:error_fraction] unless change[:error_fraction].nil?
        @settings.added_latency_ms = change[:added_latency_ms] unless change[:added_latency_ms].nil?
        @settings.body_drift = change[:body_drift] unless change[:body_drift].nil?
        @settings.max_concurrent = change[:max_concurrent] unless change[:max_concurrent].nil?
        @settings.weakness = change[:weakness] unless change[:weakness].nil?
        @settings.dup
      end
    end

    # Does this request get an injected 500? Random is not thread-safe: draw under the mutex.
    def inject_error?(settings)
      settings.error_fraction.positive? && @mutex.synchronize { @random.rand } < settings.error_fraction
    end

    # Validate a /__fault POST body; raise HttpError(400) naming the bad field, before any change.
    def self.parse(body)
      unless body.is_a?(Hash)
        raise HttpError.new(400, "fault body must be a JSON object with error_fraction, added_latency_ms, " \
                                 "body_drift, max_concurrent, weakness and/or crash")
      end
      unknown = (body.keys - FIELDS).sort
      raise HttpError.new(400, "unknown fault field(s): #{unknown.join(', ')}") if unknown.any?

      change = {
        error_fraction: number(body, "error_fraction", 0.0, 1.0),
        added_latency_ms: number(body, "added_latency_ms", 0.0, MAX_ADDED_LATENCY_MS.to_f),
        crash: boolean(body, "crash") || false,
        body_drift: boolean(body, "body_drift"),
        max_concurrent: whole_number(body, "max_concurrent", 0, MAX_CONCURRENT_LIMIT),
        weakness: weakness(body),
      }
      if change.values_at(:error_fraction, :added_latency_ms, :body_drift, :max_concurrent, :weakness).all?(&:nil?) &&
         !change[:crash]
        raise HttpError.new(400, "fault body sets nothing: give error_fraction, added_latency_ms, body_drift, " \
                                 "max_concurrent, weakness or crash")
      end

      change
    end

    def self.number(body, name, low, high)
      return nil unless body.key?(name)

      value = body[name]
      raise HttpError.new(400, "#{name} must be a number, got #{value.inspect}") unless value.is_a?(Numeric)
      unless value.between?(low, high)
        raise HttpError.new(400, format("%s must be between %g and %g, got %s", name, low, high, value))
      end

      value.to_f
    end

    def self.boolean(body, name)
      return nil unless body.key?(name)

      value = body[name]
      raise HttpError.new(400, "#{name} must be true or false, got #{value.inspect}") unless [true, false].include?(value)

      value
    end
    def self.whole_number(body, name, low, high)
      value = number(body, name, low, high)
      return nil if value.nil?
      raise HttpError.new(400, format("%s must be a whole number, got %s", name, body[name])) unless value == value.floor

      value.to_i
    end
    def self.weakness(body)
      return nil unless body.key?("weakness")

      value = body["weakness"]
      allowed = Weakness::KINDS + ["none"]
      return value if allowed.include?(value)

      raise HttpError.new(400, "weakness must be one of #{allowed.join(', ')}, got #{value.inspect}")
    end
    private_class_method :number, :boolean, :whole_number, :weakness
  end
end
