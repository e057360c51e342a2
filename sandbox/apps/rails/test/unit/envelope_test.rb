require_relative "../test_helper"

class EnvelopeTest < Minitest::Test
  class RecordingMetrics
    attr_reader :observed

    def initialize = @observed = []
    def observe_request(**sample) = @observed << sample
  end

  def setup
    @metrics = RecordingMetrics.new
    ticks = [10.0, 10.25].cycle
    @app = lambda do |env|
      env["cutover.route"] = "/api/users/:id" if env["PATH_INFO"].start_with?("/api/users/")
      [200, { "Content-Type" => "application/json" }, ["{}"]]
    end
    @envelope = Cutover::Envelope.new(@app, color: "blue", metrics: @metrics, clock: -> { ticks.next })
  end

  def call(path, method: "GET", **env) = @envelope.call({ "PATH_INFO" => path, "REQUEST_METHOD" => method }.merge(env))

  def test_marks_every_answer_with_color_and_implementation
    _, headers, = call("/api/users/1")
    assert_equal "blue", headers["X-App-Color"]
    assert_equal "rails", headers["X-Served-By"]
  end

  def test_labels_by_route_ops_path_or_unmatched_and_skips_scrapes
    call("/api/users/7")
    call("/readyz")
    call("/wp-login.php")
    call("/metrics")
    assert_equal [{ method: "GET", path: "/api/users/:id", code: 200, seconds: 0.25 },
                  { method: "GET", path: "/readyz", code: 200, seconds: 0.25 },
                  { method: "GET", path: "unmatched", code: 200, seconds: 0.25 }], @metrics.observed
  end

  def test_refuses_bodies_it_cannot_frame_before_the_app_reads_them
    status, headers, body = call("/api/orders", method: "POST", "CONTENT_LENGTH" => (64 * 1024 + 1).to_s)
    assert_equal [413, "close", '{"error":"body larger than 65536 bytes"}'], [status, headers["Connection"], body.join]
    assert_equal 411, call("/api/orders", method: "POST", "HTTP_TRANSFER_ENCODING" => "chunked").first
    assert_equal 400, call("/api/orders", method: "POST", "CONTENT_LENGTH" => "12x").first
    assert_equal "rails", call("/api/orders", method: "POST", "CONTENT_LENGTH" => "-1")[1]["X-Served-By"]
  end
end
