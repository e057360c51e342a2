# The outbox both apps share (table `outbox`, include/sql/bootstrap/outbox.sql): what the service
# has to tell the outside world, written once per (topic, key) by whichever color's job gets
# there first, and published by a relay later.
class OutboxMessage < ApplicationRecord
  self.table_name = "outbox"

  ORDER_CONFIRMED = "order.confirmed"
  PROCESSED_BY = "sidekiq"

  # Idempotent: a retried job (or green's for the same order) writes nothing twice
  # (ON CONFLICT (topic, key) DO NOTHING). True when this call wrote the row.
  def self.record_once!(topic:, key:, payload:)
    result = insert({ topic: topic, key: key.to_s, payload: payload, processed_by: PROCESSED_BY,
                      created_at: Time.current },
                    unique_by: :index_outbox_on_topic_and_key, returning: %w[id])
    result.rows.any?
  end
end
