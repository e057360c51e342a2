# GET/POST/DELETE /__fault: the rehearsals' fault injection, loopback only (HAProxy denies it
# too and adds X-Forwarded-For, which is refused here as a second line of defence).
class FaultsController < ApplicationController
  before_action { loopback_only!("fault control is only reachable directly from loopback") }

  def show
    render json: Cutover.faults.snapshot
  end

  def destroy
    settings = Cutover.faults.clear
    Cutover.capacity.limit_changed
    render json: settings
  end

  def create
    change = Cutover::FaultState.parse(json_body)
    settings = Cutover.faults.update(change)
    Cutover.capacity.limit_changed
    return render(json: settings) unless change[:crash]

    Rails.logger.warn("fault: crash requested, exiting with #{Cutover::CRASH_EXIT_CODE}")
    response.set_header("Connection", "close")
    # Exit after the 202 has left, without cleanup, exactly like a segfault or OOM kill would.
    Thread.new do
      sleep 0.05
      Process.exit!(Cutover::CRASH_EXIT_CODE)
    end
    render json: { crashing: true, exit_code: Cutover::CRASH_EXIT_CODE }, status: :accepted
  end

  # Stage 4's proof that error reporting works: raise one Cutover::ErrorReportingCheck, report it
  # with the caller's check id as the `check_id` tag, and answer 202 (never a 5xx: no SLO counts it).
  # 412 when no DSN is configured, so the check fails saying why instead of waiting for nothing.
  def report_exception
    body = json_body
    check_id = body.is_a?(Hash) ? body["check_id"].to_s : ""
    raise Cutover::HttpError.new(400, "check_id must be 1-64 letters, digits, - or _") unless check_id.match?(/\A[\w-]{1,64}\z/)
    return render(json: { reported: false, error: "no SENTRY_DSN configured" }, status: :precondition_failed) unless defined?(Sentry) && Sentry.initialized?

    begin
      raise Cutover::ErrorReportingCheck, "error reporting check #{check_id}"
    rescue Cutover::ErrorReportingCheck => error
      event = Sentry.with_scope do |scope|
        scope.set_tags(check_id: check_id, route: "/__fault/report_exception")
        Sentry.capture_exception(error)
      end
    end
    render json: { reported: true, type: error.class.name, check_id: check_id, event_id: event&.event_id,
                   release: Sentry.configuration.release }, status: :accepted
  end
end
