# Subscribe with {"channel": "OrderStatusChannel", "order_id": 42}: the order's current status
# first, then every status push for it (creation, confirmation).
class OrderStatusChannel < ApplicationCable::Channel
  def subscribed
    order = Order.api_fields.find_by(id: params[:order_id].to_i)
    return reject if order.nil?

    stream_from Order.status_stream(order.id)
    transmit order.status_message
  end
end
