require_relative "../test_helper"

class FaultStateTest < Minitest::Test
  def parse(body) = Cutover::FaultState.parse(body)

  def refused(body)
    error = assert_raises(Cutover::HttpError) { parse(body) }
    assert_equal 400, error.status
    error.message
  end

  def test_parses_each_field
    change = parse("error_fraction" => 0.5, "added_latency_ms" => 200, "body_drift" => true)
    assert_equal({ error_fraction: 0.5, added_latency_ms: 200.0, crash: false, body_drift: true, max_concurrent: nil,
                   weakness: nil }, change)
    assert_equal "stack_trace", parse("weakness" => "stack_trace")[:weakness]
    assert_equal "none", parse("weakness" => "none")[:weakness]
    assert_equal 2, parse("max_concurrent" => 2)[:max_concurrent]
    assert_equal 0, parse("max_concurrent" => 0)[:max_concurrent]
    assert parse("crash" => true)[:crash]
  end

  def test_refuses_bad_bodies_naming_the_field
    assert_match(/must be a JSON object/, refused([1]))
    assert_equal "unknown fault field(s): colour, speed", refused("speed" => 1, "colour" => "red")
    assert_equal "error_fraction must be between 0 and 1, got 2", refused("error_fraction" => 2)
    assert_equal "added_latency_ms must be a number, got \"5\"", refused("added_latency_ms" => "5")
    assert_equal "error_fraction must be a number, got true", refused("error_fraction" => true)
    assert_equal "crash must be true or false, got 1", refused("crash" => 1)
    assert_match(/sets nothing/, refused({}))
    assert_match(/sets nothing/, refused("crash" => false))
    assert_equal "max_concurrent must be a whole number, got 1.5", refused("max_concurrent" => 1.5)
    assert_equal "max_concurrent must be between 0 and 10000, got -1", refused("max_concurrent" => -1)
    assert_equal "weakness must be one of stack_trace, missing_security_headers, x_powered_by, unauthenticated_route, " \
                 "none, got \"sql_injection\"", refused("weakness" => "sql_injection")
  end

  def test_update_keeps_fields_not_mentioned_and_clear_resets
    faults = Cutover::FaultState.new
    faults.update(parse("error_fraction" => 0.25))
    settings = faults.update(parse("added_latency_ms" => 10))
    assert_equal({ "error_fraction" => 0.25, "added_latency_ms" => 10.0, "body_drift" => false, "max_concurrent" => 0,
                   "weakness" => "none" }, settings.as_json)
    assert_equal 3, faults.update(parse("max_concurrent" => 3)).max_concurrent
    assert_equal "x_powered_by", faults.update(parse("weakness" => "x_powered_by")).weakness
    assert_equal "none", faults.update(parse("weakness" => "none")).weakness
    assert_equal({ "error_fraction" => 0.0, "added_latency_ms" => 0.0, "body_drift" => false, "max_concurrent" => 0,
                   "weakness" => "none" }, faults.clear.as_json)
    assert_equal 0.0, faults.snapshot.error_fraction
  end

  def test_injects_errors_at_the_requested_fraction
    faults = Cutover::FaultState.new(random: Random.new(7))
    refute faults.inject_error?(faults.snapshot), "no fault, no error"
    settings = faults.update(parse("error_fraction" => 0.3))
    hits = Array.new(10_000) { faults.inject_error?(settings) }.count(true)
    assert_in_delta 3000, hits, 200
    assert Array.new(100) { faults.inject_error?(faults.update(parse("error_fraction" => 1))) }.all?
  end
end
