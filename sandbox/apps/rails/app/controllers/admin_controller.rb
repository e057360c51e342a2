# GET /api/admin/users: an internal export that must never be reachable. It exists only for the
# insecure fault's unauthenticated_route weakness (stage 7 rehearsals); otherwise it is the same
# JSON 404 as any unknown route.
class AdminController < ApplicationController
  def users
    unless Cutover.faults.snapshot.weakness == "unauthenticated_route"
      return render_error(404, "no route for #{request.method} #{request.path}")
    end

    render json: User.order(:id).limit(20).pluck(:id, :email).map { |id, email| { id: id, email: email } }
  end
end
