# Rack entry point for Puma: `bin/web` (see README.md).
require_relative "config/environment"

# The routes are drawn by now (they are not yet in an after_initialize hook).
Cutover::Metrics.precreate(RouteLabels.api_routes)

run Rails.application
Rails.application.load_server
