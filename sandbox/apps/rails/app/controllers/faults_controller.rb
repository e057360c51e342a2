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
end
