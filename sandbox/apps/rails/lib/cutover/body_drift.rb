module Cutover
  # The body_drift fault: every string "status" field upper-cased, at any depth (an order, or
  # each order of a list). Nothing else changes, so a parity diff names exactly this field.
  module BodyDrift
    module_function

    def apply(payload)
      case payload
      when Hash
        payload.to_h { |key, value| [key, key.to_s == "status" && value.is_a?(String) ? value.upcase : apply(value)] }
      when Array
        payload.map { |item| apply(item) }
      else
        payload
      end
    end
  end
end
