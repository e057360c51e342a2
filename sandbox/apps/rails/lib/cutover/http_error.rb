module Cutover
  # An answer decided before any handler runs (bad input, fault control refused): status + message.
  class HttpError < StandardError
    attr_reader :status

    def initialize(status, message)
      super(message)
      @status = status
    end
  end

  # The error fault's failure (error_fraction): raised in the request like a real defect, so the
  # SDK reports it under this type. Green raises its own InjectedFaultError for the same fault.
  class InjectedFaultError < StandardError
    def initialize(message = "injected fault")
      super
    end
  end

  # Raised on purpose by POST /__fault/report_exception (stage 4's check that error reporting
  # reaches Sentry): rescued and reported at once, never a 5xx, so no SLO counts it.
  class ErrorReportingCheck < StandardError; end
end
