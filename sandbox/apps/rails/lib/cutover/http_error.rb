module Cutover
  # An answer decided before any handler runs (bad input, fault control refused): status + message.
  class HttpError < StandardError
    attr_reader :status

    def initialize(status, message)
      super(message)
      @status = status
    end
  end
end
