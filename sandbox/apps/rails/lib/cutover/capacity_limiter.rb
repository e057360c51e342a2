module Cutover
  # The capacity_limit fault: at most limit.call holders at once across Puma's threads; the others
  # wait (a queue, not a refusal: the app gets slow, it does not fail). The limit is read on every
  # acquire and every release, so lowering or clearing it reaches the requests still waiting.
  class CapacityLimiter
    def initialize(limit)
      @limit = limit
      @mutex = Mutex.new
      @freed = ConditionVariable.new
      @active = 0
    end

    def in_flight = @mutex.synchronize { @active }

    def hold
      @mutex.synchronize do
        @freed.wait(@mutex) while full?
        @active += 1
      end
      begin
        yield
      ensure
        @mutex.synchronize do
          @active -= 1
          @freed.broadcast
        end
      end
    end

    # Wake the waiters after the limit changed (a cleared fault frees them at once).
    def limit_changed = @mutex.synchronize { @freed.broadcast }

    private

    def full?
      limit = @limit.call
      limit.positive? && @active >= limit
    end
  end
end
