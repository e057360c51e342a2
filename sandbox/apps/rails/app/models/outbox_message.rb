# outbox_messages (include/sql/bootstrap/outbox.sql): what the app has to tell the outside
# world, written once per (topic, key) and published by a relay later.
class OutboxMessage < ApplicationRecord
  ORDER_CONFIRMED = "order.confirmed"

  # Idempotent: a retried job writes nothing twice (ON CONFLICT (topic, key) DO NOTHING).
  # True when this call wrote the row.
  def self.record_once!(topic:, key:, payload:)
    result = insert({ topic: topic, key: key.to_s, payload: payload, created_at: Time.current },
                    unique_by: :index_outbox_messages_on_topic_and_key, returning: %w[id])
    result.rows.any?
  end
end
