require_relative "../test_helper"

class ParamsTest < Minitest::Test
  def refused(&block)
    error = assert_raises(Cutover::HttpError, &block)
    assert_equal 400, error.status
    error.message
  end

  def test_order_takes_integer_cents_only
    assert_equal({ user_id: 1, amount_cents: 1234, line_items: [] },
                 Cutover::Params.order("user_id" => 1, "amount_cents" => 1234, "extra" => "ignored"))
    message = "amount_cents is required and must be an integer in [1, 2147483647]"
    assert_equal message, refused { Cutover::Params.order("user_id" => 1, "amount_cents" => "1234") }
    assert_equal message, refused { Cutover::Params.order("user_id" => 1, "amount_cents" => 12.5) }
    assert_equal message, refused { Cutover::Params.order("user_id" => 1, "amount_cents" => 2**31) }
    assert_equal message, refused { Cutover::Params.order("user_id" => 1, "amount_cents" => true) }
    assert_match(/\Auser_id is required/, refused { Cutover::Params.order("user_id" => 0, "amount_cents" => 1) })
    assert_match(/\Auser_id is required/, refused { Cutover::Params.order([1]) })
  end

  def test_line_items_must_add_up_to_the_amount
    items = [{ "sku" => "A-1", "quantity" => 2, "unit_price_cents" => 150 }, { "sku" => "B", "quantity" => 1, "unit_price_cents" => 200 }]
    order = Cutover::Params.order("user_id" => 3, "amount_cents" => 500, "line_items" => items)
    assert_equal [{ sku: "A-1", quantity: 2, unit_price_cents: 150 }, { sku: "B", quantity: 1, unit_price_cents: 200 }],
                 order[:line_items]
    assert_equal "line_items add up to 500 cents, amount_cents is 501",
                 refused { Cutover::Params.order("user_id" => 3, "amount_cents" => 501, "line_items" => items) }
    assert_match(/line_items\[1\]\.quantity/, refused {
      Cutover::Params.order("user_id" => 3, "amount_cents" => 1, "line_items" => [items[0], items[1].merge("quantity" => 0)])
    })
    assert_match(/1 to 100 objects/, refused { Cutover::Params.order("user_id" => 3, "amount_cents" => 1, "line_items" => []) })
  end

  def test_user_needs_an_email_and_a_string_name
    assert_equal({ email: "a@b.test", name: nil }, Cutover::Params.user("email" => "a@b.test"))
    assert_equal "email is required and must be a non-empty string", refused { Cutover::Params.user("email" => "  ") }
    assert_equal "name must be a string", refused { Cutover::Params.user("email" => "a@b.test", "name" => 5) }
  end
end
