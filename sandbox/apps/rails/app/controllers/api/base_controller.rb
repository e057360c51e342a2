module Api
  # The product API: counted under its Rails route, subject to the injected faults.
  class BaseController < ApplicationController
    before_action :label_route
    # capacity_limit first: a queued request waits for its slot, then gets the other faults.
    around_action :hold_capacity_slot
    before_action :apply_injected_faults
    rescue_from Cutover::InjectedFaultError, with: :injected_fault

    private

    def hold_capacity_slot(&action) = Cutover.capacity.hold(&action)

    def label_route
      request.env[Cutover::Envelope::ROUTE_KEY] = RouteLabels.label(controller_path, action_name)
    end

    # Faults model a defect in this app: latency first, then errors, which short-circuit before
    # the action so an injected failure never writes. The error is a real exception (raised,
    # rescued, reported to Sentry) so error tracking sees what a real defect would produce.
    def apply_injected_faults
      @faults = Cutover.faults.snapshot
      sleep(@faults.added_latency_ms / 1000.0) if @faults.added_latency_ms.positive?
      raise Cutover::InjectedFaultError if Cutover.faults.inject_error?(@faults)
    end

    def injected_fault(error)
      report_exception(error)
      response.set_header("X-Fault-Injected", "1")
      render_error(500, error.message)
    end

    def render_api(payload, status: :ok, **options)
      payload = payload.as_json
      payload = Cutover::BodyDrift.apply(payload) if @faults&.body_drift
      render json: payload, status: status, **options
    end

    def path_id(name = :id) = Integer(request.path_parameters.fetch(name), 10)
  end
end
