require "json"

module Cutover
  # Outermost Rack middleware: what every answer of this app shares, errors included.
  # - X-App-Color (the process that answered) and X-Served-By: rails (whose code produced the
  #   answer): the traffic ledger (sandbox/traffic.py) reads both.
  # - Bodies HAProxy could not frame safely are refused before Rails reads them.
  # - Each request is counted and timed under its Rails route (set by the controller in
  #   env["cutover.route"]), its ops path, or "unmatched". Scrapes and WebSockets are not counted:
  #   scrapes would dominate the counts, and a WebSocket "request" lasts as long as the socket.
  class Envelope
    ROUTE_KEY = "cutover.route"
    NOT_COUNTED = %w[/metrics /cable].freeze

    def initialize(app, color: Env.color, metrics: Metrics, clock: -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) },
                   faults: Cutover.faults)
      @app = app
      @faults = faults
      @color = color
      @metrics = metrics
      @clock = clock
    end

    def call(env)
      started = @clock.call
      status, headers, body = refuse_body(env) || @app.call(env)
      path = env["PATH_INFO"].to_s
      unless NOT_COUNTED.include?(path) || status.to_i.negative? # -1: the socket was hijacked (Action Cable)
        label = env[ROUTE_KEY] || (OPS_PATHS.include?(path) ? path : UNMATCHED_ROUTE)
        @metrics.observe_request(method: env["REQUEST_METHOD"], path: label, code: status, seconds: @clock.call - started)
      end
      headers["X-App-Color"] = @color
      headers["X-Served-By"] = RAILS
      Weakness.apply_to_headers(@faults.snapshot.weakness, headers)
      [status, headers, body]
    end

    private

    def refuse_body(env)
      if env["HTTP_TRANSFER_ENCODING"].to_s.downcase.include?("chunked")
        return error(411, "chunked bodies are not supported; send Content-Length")
      end

      length = env["CONTENT_LENGTH"].to_s
      return nil if length.empty?
      return error(400, "invalid Content-Length") unless length.match?(/\A\d{1,12}\z/)
      return error(413, "body larger than #{MAX_BODY_BYTES} bytes") if length.to_i > MAX_BODY_BYTES

      nil
    end

    # The unread body would corrupt the next keep-alive request: close the connection.
    def error(status, message)
      [status, { "Content-Type" => "application/json; charset=utf-8", "Connection" => "close" },
       [JSON.generate(error: message)]]
    end
  end
end
