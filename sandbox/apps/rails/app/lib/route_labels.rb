# Route templates as metric labels ("/api/users/:id"), read from the Rails routes themselves so
# a new route is labelled without touching this file.
module RouteLabels
  module_function

  # Not memoised: called once at boot (precreate) and by tests, after the routes are drawn.
  def api_routes
    Rails.application.routes.routes.filter_map do |route|
      path = route.path.spec.to_s.delete_suffix("(.:format)")
      next unless path.start_with?("/api/")

      method = route.verb.to_s
      { method: method, path: path, success_code: method == "POST" ? 201 : 200,
        controller: route.defaults[:controller], action: route.defaults[:action] }
    end
  end

  def label(controller, action)
    @labels ||= api_routes.to_h { |route| [[route[:controller], route[:action]], route[:path]] }
    @labels[[controller, action]]
  end

  # Methods that have a route for this path (other than the catch-all), for 405 answers.
  def methods_for(path)
    %w[GET POST PUT PATCH DELETE].select do |method|
      Rails.application.routes.recognize_path(path, method: method)[:controller] != "errors"
    rescue ActionController::RoutingError
      false
    end
  end
end
