require "json"
require "logger"
require "securerandom"
require "time"

module Cutover
  # One JSON object per log line, with the field names both colors share (docs/observability.md,
  # "Log lines"): every line has time, level, color and release; a request line (kind "request",
  # written by lograge once per request) adds request_id, method, path, route, status, duration_ms
  # and served_by. Plain Ruby, so the unit tests run without Rails.
  module RequestLog
    KIND = "request"
    UNKNOWN_RELEASE = "rails@unknown"

    module_function

    # The release the launcher names (APP_RELEASE, e.g. "rails@1a2b3c4"), else an honest unknown.
    def release(env = ENV)
      value = env.fetch("APP_RELEASE", "").strip
      value.empty? ? UNKNOWN_RELEASE : value
    end

    # lograge's before_format: its data (method, path without query, status, duration in ms...) and
    # the controller's payload (the request) -> the shared request line. A 5xx is an error line.
    def line(data, request, color:, release:, now: Time.now)
      status = data[:status].to_i
      {
        time: now.utc.iso8601(3),
        level: status >= 500 ? "error" : "info",
        kind: KIND,
        color: color,
        release: release,
        request_id: request&.request_id,
        method: data[:method],
        path: data[:path],
        route: (request && request.env[Envelope::ROUTE_KEY]) || route_for_unrouted(data[:path]),
        status: status,
        duration_ms: data[:duration].to_f.round(2),
        served_by: RAILS,
        error: data[:error],
      }.compact
    end

    # Any other line (Rails, a gem, Puma's own messages): the same identity and the text as msg.
    def message_line(text, level:, color:, release:, time: Time.now)
      JSON.generate({ time: time.utc.iso8601(3), level: level, color: color, release: release, msg: text.to_s.strip })
    end

    def route_for_unrouted(path) = OPS_PATHS.include?(path) ? path : UNMATCHED_ROUTE

    # The Logger formatter of the whole app: a line that already is a JSON object (lograge's
    # request line) is written as it is; anything else Rails or a gem logs (boot, Action Cable,
    # errors) becomes {time, level, color, release, msg}, so every line of the file parses.
    class Formatter < ::Logger::Formatter
      LEVELS = { "DEBUG" => "debug", "INFO" => "info", "WARN" => "warn", "ERROR" => "error", "FATAL" => "fatal",
                 "ANY" => "info" }.freeze

      def initialize(color:, release:)
        super()
        @color = color
        @release = release
      end

      def call(severity, time, _progname, message)
        text = message.is_a?(String) ? message : message.inspect
        return "#{text}\n" if json_object?(text)

        RequestLog.message_line(text, level: LEVELS.fetch(severity.to_s, "info"), color: @color, release: @release,
                                      time: time || Time.now) + "\n"
      end

      private

      def json_object?(text)
        return false unless text.start_with?("{") && text.end_with?("}") && !text.include?("\n")

        JSON.parse(text).is_a?(Hash)
      rescue JSON::ParserError
        false
      end
    end
  end
end
