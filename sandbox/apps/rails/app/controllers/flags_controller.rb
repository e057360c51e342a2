# GET /__flags: the flags this app evaluates right now. Blue is Rails: it serves everything itself
# and evaluates no flags (X-Cutover-Serve is ignored here), which the flags stage accepts as
# "serves Rails".
class FlagsController < ApplicationController
  before_action { loopback_only!("/__flags is only reachable directly from loopback") }

  def show
    render json: { color: color, evaluates_flags: false, backend: nil,
                   features: Cutover::FEATURES.index_with(false), serves_rails: true }
  end
end
