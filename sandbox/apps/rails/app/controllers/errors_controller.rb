# Unknown routes answer JSON like every other error: 405 (with Allow) when the path exists
# under another method, else 404.
class ErrorsController < ApplicationController
  def not_found
    allowed = RouteLabels.methods_for(request.path)
    response.set_header("Allow", allowed.join(", ")) if allowed.any?
    render_error(allowed.any? ? 405 : 404, "no route for #{request.method} #{request.path}")
  end
end
