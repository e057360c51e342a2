require_relative "../test_helper"

class WeaknessTest < Minitest::Test
  RAILS_DEFAULTS = { "X-Frame-Options" => "SAMEORIGIN", "X-Content-Type-Options" => "nosniff",
                     "Referrer-Policy" => "strict-origin-when-cross-origin", "Content-Type" => "application/json" }.freeze

  def headers_with(weakness) = Cutover::Weakness.apply_to_headers(weakness, RAILS_DEFAULTS.dup)

  def test_no_weakness_leaves_the_headers_alone
    assert_equal RAILS_DEFAULTS, headers_with("none")
  end

  def test_missing_security_headers_drops_every_security_header_and_nothing_else
    assert_equal({ "Content-Type" => "application/json" }, headers_with("missing_security_headers"))
  end

  def test_x_powered_by_names_the_framework
    assert_equal "Ruby on Rails", headers_with("x_powered_by")["X-Powered-By"]
    assert_nil headers_with("none")["X-Powered-By"]
  end

  def test_stack_trace_puts_the_backtrace_in_error_answers_only_under_that_weakness
    trace = Array.new(20) { |i| "/app/controllers/x.rb:#{i}:in `show'" }
    assert_equal({ error: "no route" }, Cutover::Weakness.error_payload("none", "no route", trace))
    leaked = Cutover::Weakness.error_payload("stack_trace", "no route", trace)
    assert_equal 12, leaked[:trace].size
    assert_match(/x\.rb:0:in/, leaked[:trace].first)
  end

  def test_the_envelope_applies_the_weakness_of_its_fault_state
    faults = Cutover::FaultState.new
    app = ->(_env) { [404, RAILS_DEFAULTS.dup, ["{}"]] }
    envelope = Cutover::Envelope.new(app, color: "blue", metrics: Class.new { def self.observe_request(**) = nil },
                                          faults: faults)
    call = -> { envelope.call({ "PATH_INFO" => "/nope", "REQUEST_METHOD" => "GET" })[1] }
    assert_equal "nosniff", call.call["X-Content-Type-Options"]
    faults.update(Cutover::FaultState.parse("weakness" => "missing_security_headers"))
    assert_nil call.call["X-Content-Type-Options"]
    faults.clear
    assert_equal "nosniff", call.call["X-Content-Type-Options"]
  end
end
