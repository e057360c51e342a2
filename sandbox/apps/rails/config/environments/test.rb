Rails.application.configure do
  config.cache_classes = true
  config.eager_load = false
  config.consider_all_requests_local = false
  config.action_dispatch.show_exceptions = true
  config.active_support.deprecation = :stderr
  config.logger = ActiveSupport::Logger.new(nil)
end
