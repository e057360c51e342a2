# Writes an order's confirmation to the outbox, then pushes the order's status to its
# WebSocket subscribers. Runs in the Sidekiq worker (bin/worker) on the sandbox Redis.
class OrderConfirmationJob
  include Sidekiq::Job

  sidekiq_options queue: "default", retry: 5

  def perform(order_id)
    order = Order.api_fields.find_by(id: order_id)
    if order.nil? # deleted before the job ran: nothing to confirm, and retrying will not help
      Sidekiq.logger.info("order #{order_id}: gone, no confirmation")
      return
    end

    written = OutboxMessage.record_once!(topic: OutboxMessage::ORDER_CONFIRMED, key: order.id,
                                         payload: { order_id: order.id, user_id: order.user_id,
                                                    amount_cents: order.amount_cents, status: order.status })
    Sidekiq.logger.info("order #{order.id}: confirmation #{written ? 'written' : 'already in the outbox'}")
    ActionCable.server.broadcast(Order.status_stream(order.id), order.status_message(confirmation: "recorded"))
  end
end
