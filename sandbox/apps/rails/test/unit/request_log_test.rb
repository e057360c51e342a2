require_relative "../test_helper"
require "logger"

# The log line format both colors share (docs/observability.md "Log lines"); the TypeScript app's
# test/logging.test.ts checks the same names.
class RequestLogTest < Minitest::Test
  REQUEST_FIELDS = %w[time level kind color release request_id method path route status duration_ms served_by].freeze
  FakeRequest = Struct.new(:request_id, :env)

  def lograge_data(status: 200, path: "/api/orders/42", **extra)
    { method: "GET", path: path, format: "*/*", controller: "Api::OrdersController", action: "show",
      status: status, duration: 12.3456, view: 0.0, db: 1.5 }.merge(extra)
  end

  def test_request_line_has_the_shared_fields_in_order
    request = FakeRequest.new("abc-123", { "cutover.route" => "/api/orders/:id" })
    line = Cutover::RequestLog.line(lograge_data, request, color: "blue", release: "rails@1a2b3c4",
                                                          now: Time.utc(2026, 12, 8, 2, 40, 1, 234_567))
    assert_equal REQUEST_FIELDS, line.keys.map(&:to_s)
    assert_equal({ time: "2026-12-08T02:40:01.234Z", level: "info", kind: "request", color: "blue", release: "rails@1a2b3c4",
                   request_id: "abc-123", method: "GET", path: "/api/orders/42", route: "/api/orders/:id", status: 200,
                   duration_ms: 12.35, served_by: "rails" }, line)
  end

  def test_a_5xx_is_an_error_line_and_keeps_lograges_error
    line = Cutover::RequestLog.line(lograge_data(status: 500, error: "RuntimeError: boom"), FakeRequest.new("r1", {}),
                                    color: "green", release: "x")
    assert_equal "error", line[:level]
    assert_equal "RuntimeError: boom", line[:error]
    assert_equal "unmatched", line[:route] # no controller labelled it
  end

  def test_release_comes_from_app_release_or_says_unknown
    assert_equal "rails@9f8e7d6", Cutover::RequestLog.release({ "APP_RELEASE" => " rails@9f8e7d6 " })
    assert_equal "rails@unknown", Cutover::RequestLog.release({})
  end

  def test_formatter_passes_json_through_and_wraps_everything_else
    formatter = Cutover::RequestLog::Formatter.new(color: "blue", release: "rails@1")
    request_line = JSON.generate({ time: "t", level: "info", kind: "request" })
    assert_equal "#{request_line}\n", formatter.call("INFO", Time.now, nil, request_line)

    wrapped = formatter.call("ERROR", Time.utc(2026, 12, 8, 2, 40, 1), nil, "unhandled RuntimeError on GET /x: boom\n")
    assert wrapped.end_with?("\n")
    assert_equal 1, wrapped.count("\n")
    assert_equal({ "time" => "2026-12-08T02:40:01.000Z", "level" => "error", "color" => "blue", "release" => "rails@1",
                   "msg" => "unhandled RuntimeError on GET /x: boom" }, JSON.parse(wrapped))
  end

  def test_formatter_wraps_text_that_only_looks_like_json_and_multiline_messages
    formatter = Cutover::RequestLog::Formatter.new(color: "blue", release: "r")
    ["{not json}", "[1, 2]", "{\"a\": 1}\n{\"b\": 2}"].each do |text|
      line = formatter.call("WARN", Time.now, nil, text)
      assert_equal 1, line.count("\n"), text
      assert_equal text.strip, JSON.parse(line)["msg"]
    end
  end

  def test_puma_messages_become_message_lines
    line = Cutover::RequestLog.message_line("* Listening on http://127.0.0.1:18081\n", level: "info", color: "blue",
                                            release: "rails@1", time: Time.utc(2026, 12, 8))
    assert_equal({ "time" => "2026-12-08T00:00:00.000Z", "level" => "info", "color" => "blue", "release" => "rails@1",
                   "msg" => "* Listening on http://127.0.0.1:18081" }, JSON.parse(line))
  end
end
