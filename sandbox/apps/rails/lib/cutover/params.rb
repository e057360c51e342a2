module Cutover
  # Validation of API request bodies on the JSON types themselves (strong parameters would let a
  # string "1234" through as an amount; the contract answers 400 naming the field instead).
  # Messages match green's (sandbox/apps/typescript) so both colors explain a refusal in the same words.
  module Params
    MAX_BIGINT = 2**63 - 1
    MAX_INTEGER = 2**31 - 1 # amount_cents and unit_price_cents are 32-bit integers in the legacy schema
    MAX_LINE_ITEMS = 100
    MAX_QUANTITY = 10_000

    module_function

    def user(body)
      email = required_string(body, "email")
      name = body["name"]
      raise HttpError.new(400, "name must be a string") unless name.nil? || name.is_a?(String)

      { email: email, name: name }
    end

    # An order, optionally with line items whose total must equal amount_cents.
    def order(body)
      user_id = required_integer(body, "user_id", 1, MAX_BIGINT)
      amount_cents = required_integer(body, "amount_cents", 1, MAX_INTEGER)
      items = line_items(body)
      total = items.sum { |item| item[:quantity] * item[:unit_price_cents] }
      if items.any? && total != amount_cents
        raise HttpError.new(400, "line_items add up to #{total} cents, amount_cents is #{amount_cents}")
      end

      { user_id: user_id, amount_cents: amount_cents, line_items: items }
    end

    def line_items(body)
      return [] unless body.key?("line_items")

      items = body["line_items"]
      unless items.is_a?(Array) && items.size.between?(1, MAX_LINE_ITEMS)
        raise HttpError.new(400, "line_items must be a list of 1 to #{MAX_LINE_ITEMS} objects")
      end

      items.each_with_index.map do |item, index|
        raise HttpError.new(400, "line_items[#{index}] must be an object") unless item.is_a?(Hash)

        { sku: required_string(item, "sku", "line_items[#{index}].sku"),
          quantity: required_integer(item, "quantity", 1, MAX_QUANTITY, "line_items[#{index}].quantity"),
          unit_price_cents: required_integer(item, "unit_price_cents", 1, MAX_INTEGER,
                                             "line_items[#{index}].unit_price_cents") }
      end
    end

    def required_string(body, name, label = name)
      value = body.is_a?(Hash) ? body[name] : nil
      raise HttpError.new(400, "#{label} is required and must be a non-empty string") unless value.is_a?(String) && !value.strip.empty?

      value
    end

    # JSON true/false are not integers here (unlike Python's bool), so no special case is needed.
    def required_integer(body, name, minimum, maximum, label = name)
      value = body.is_a?(Hash) ? body[name] : nil
      unless value.is_a?(Integer) && value.between?(minimum, maximum)
        raise HttpError.new(400, "#{label} is required and must be an integer in [#{minimum}, #{maximum}]")
      end

      value
    end
  end
end
