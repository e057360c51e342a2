require_relative "../test_helper"

class BodyDriftTest < Minitest::Test
  def test_upcases_every_status_and_nothing_else
    payload = { "user_id" => 4, "status" => "fine", "orders" => [{ "id" => 1, "status" => "paid", "sku" => "paid" }] }
    assert_equal({ "user_id" => 4, "status" => "FINE", "orders" => [{ "id" => 1, "status" => "PAID", "sku" => "paid" }] },
                 Cutover::BodyDrift.apply(payload))
    assert_equal({ "status" => 3 }, Cutover::BodyDrift.apply("status" => 3))
  end
end

class EnvTest < Minitest::Test
  def test_defaults_and_pool_size
    assert_equal "blue", Cutover::Env.color({})
    assert_equal 7, Cutover::Env.db_pool({ "RAILS_MAX_THREADS" => "5", "CABLE_WORKERS" => "2" })
    assert_equal 25_081, Cutover::Env.port({ "PORT" => "25081" })
  end

  def test_bad_values_name_the_variable
    assert_equal "PORT=80 is outside 1024..65535", assert_raises(ArgumentError) { Cutover::Env.port({ "PORT" => "80" }) }.message
    assert_equal 'PORT="8o80" is not an integer', assert_raises(ArgumentError) { Cutover::Env.port({ "PORT" => "8o80" }) }.message
    assert_match(/APP_COLOR must be blue or green/, assert_raises(ArgumentError) { Cutover::Env.color({ "APP_COLOR" => "red" }) }.message)
  end
end
