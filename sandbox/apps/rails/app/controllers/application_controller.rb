class ApplicationController < ActionController::API
  DATABASE_DOWN = [ActiveRecord::ConnectionNotEstablished, PG::ConnectionBad, PG::UnableToSend].freeze

  rescue_from StandardError, with: :internal_error
  rescue_from Cutover::HttpError, with: :http_error
  rescue_from(*DATABASE_DOWN, with: :database_unavailable)
  rescue_from ActiveRecord::StatementInvalid, with: :statement_invalid

  private

  def color = Cutover::Env.color

  # The insecure fault's stack_trace weakness adds the backtrace of where the error was rendered.
  def render_error(status, message)
    render(json: Cutover::Weakness.error_payload(Cutover.faults.snapshot.weakness, message, caller), status: status)
  end

  # JSON bodies are parsed here, not by Rails' params parser: the contract validates the JSON
  # types themselves and parses whatever Content-Type the client sent, like the other color.
  def json_body
    raw = request.raw_post.to_s
    return {} if raw.empty?

    JSON.parse(raw)
  rescue JSON::ParserError => error
    raise Cutover::HttpError.new(400, "body is not valid JSON: #{error.message.lines.first.to_s.strip}")
  end

  def loopback_only!(message)
    return if Cutover::LOOPBACK.include?(request.remote_addr) && request.headers["X-Forwarded-For"].blank?

    raise Cutover::HttpError.new(403, message)
  end

  def http_error(error) = render_error(error.status, error.message)

  def database_unavailable(error)
    render_error(503, "database unavailable: #{error.message.squish}")
  end

  # A broken connection surfaces as StatementInvalid with the PG error as its cause.
  def statement_invalid(error)
    return database_unavailable(error.cause) if DATABASE_DOWN.any? { |klass| error.cause.is_a?(klass) }

    internal_error(error)
  end

  # A bug must become a 500 with a JSON body, not an HTML page or a dropped connection.
  def internal_error(error)
    Rails.logger.error("unhandled #{error.class} on #{request.method} #{request.path}: #{error.message}")
    report_exception(error)
    render_error(500, "internal error")
  end

  # Rescued exceptions never reach sentry-rails' Rack middleware: a 500 is reported here, with the
  # route it happened on (asynchronous: the SDK's background worker sends it).
  def report_exception(error)
    return unless defined?(Sentry) && Sentry.initialized?

    Sentry.with_scope do |scope|
      scope.set_tags(route: request.env[Cutover::Envelope::ROUTE_KEY] || request.path)
      Sentry.capture_exception(error)
    end
  end
end
