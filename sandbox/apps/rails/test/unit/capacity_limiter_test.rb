require_relative "../test_helper"

class CapacityLimiterTest < Minitest::Test
  # Runs `count` holders at once, each busy for a moment; returns the most seen inside together.
  def most_at_once(limiter, count)
    inside = 0
    most = 0
    lock = Mutex.new
    threads = Array.new(count) do
      Thread.new do
        limiter.hold do
          lock.synchronize { most = [most, inside += 1].max }
          sleep 0.02
          lock.synchronize { inside -= 1 }
        end
      end
    end
    threads.each(&:join)
    most
  end

  def test_holds_at_most_the_limit_and_queues_the_rest
    limiter = Cutover::CapacityLimiter.new(-> { 2 })
    assert_equal 2, most_at_once(limiter, 6)
    assert_equal 0, limiter.in_flight
  end

  def test_no_limit_runs_everyone_at_once
    assert_equal 6, most_at_once(Cutover::CapacityLimiter.new(-> { 0 }), 6)
  end

  def test_a_cleared_limit_frees_the_waiters
    limit = 1
    limiter = Cutover::CapacityLimiter.new(-> { limit })
    release = Queue.new
    holder = Thread.new { limiter.hold { release.pop } }
    sleep 0.02 until limiter.in_flight == 1
    waiter = Thread.new { limiter.hold { :served } }
    sleep 0.05
    assert waiter.alive?, "waits while the one slot is taken"
    limit = 0
    limiter.limit_changed
    assert_equal :served, waiter.value
    release << true
    holder.join
    assert_equal 0, limiter.in_flight
  end

  def test_a_failing_holder_gives_its_slot_back
    limiter = Cutover::CapacityLimiter.new(-> { 1 })
    assert_raises(RuntimeError) { limiter.hold { raise "boom" } }
    assert_equal 0, limiter.in_flight
    assert_equal :ok, limiter.hold { :ok }
  end
end
