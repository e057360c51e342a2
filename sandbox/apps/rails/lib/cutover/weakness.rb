module Cutover
  # The insecure fault (stage 7's rehearsals): one security weakness a careless build could ship.
  # Pure functions over a response's headers and an error's payload, so the unit tests need no Rails.
  #   stack_trace               error answers carry the backtrace (ZAP 90022, application error disclosure)
  #   missing_security_headers  the security headers Rails sets by default are gone (ZAP 10020, 10021, ...)
  #   x_powered_by              the framework names itself in X-Powered-By (ZAP 10037)
  #   unauthenticated_route     GET /api/admin/users lists users to anyone (AdminController)
  module Weakness
    KINDS = %w[stack_trace missing_security_headers x_powered_by unauthenticated_route].freeze
    SECURITY_HEADERS = %w[X-Frame-Options X-Content-Type-Options X-XSS-Protection X-Download-Options
                          X-Permitted-Cross-Domain-Policies Referrer-Policy Content-Security-Policy].freeze
    POWERED_BY = "Ruby on Rails"

    module_function

    def apply_to_headers(weakness, headers)
      case weakness
      when "missing_security_headers" then SECURITY_HEADERS.each { |name| headers.delete(name) }
      when "x_powered_by" then headers["X-Powered-By"] = POWERED_BY
      end
      headers
    end

    def error_payload(weakness, message, backtrace)
      payload = { error: message }
      payload[:trace] = Array(backtrace).first(12) if weakness == "stack_trace"
      payload
    end
  end
end
