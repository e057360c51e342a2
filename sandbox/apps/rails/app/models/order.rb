# orders on the legacy schema: integer cents, string status. The expand migration's triggers
# fill amount/currency/status_v2 from these columns on every write from this app.
class Order < ApplicationRecord
  API_FIELDS = %w[id user_id amount_cents status created_at updated_at].freeze
  STATUS_CHANNEL = "order_status"

  belongs_to :user
  has_many :line_items, dependent: :destroy

  # Same values as the orders_status_check constraint.
  enum status: { pending: "pending", paid: "paid", shipped: "shipped", cancelled: "cancelled", refunded: "refunded" }

  validates :amount_cents, numericality: { only_integer: true, greater_than: 0, less_than_or_equal_to: 2**31 - 1 }

  scope :api_fields, -> { select(API_FIELDS) }

  after_create_commit :announce

  def as_json(options = {}) = super({ only: API_FIELDS }.merge(options))

  # An order and its line items in one transaction (all or nothing).
  def self.place!(user_id:, amount_cents:, line_items: [])
    transaction do
      order = create!(user_id: user_id, amount_cents: amount_cents, status: "pending")
      now = Time.current
      unless line_items.empty?
        LineItem.insert_all!(line_items.map { |item| item.merge(order_id: order.id, created_at: now, updated_at: now) })
      end
      order
    end
  end

  def self.status_stream(order_id) = "#{STATUS_CHANNEL}:#{order_id}"

  def status_message(extra = {}) = { order_id: id, status: status }.merge(extra)

  private

  # After commit, never inside the transaction: the job must find the row. Neither the job nor
  # the WebSocket push is allowed to fail the write that was already committed and will be
  # acknowledged with 201: a Redis outage is logged and counted instead.
  def announce
    OrderConfirmationJob.perform_async(id)
  rescue Redis::BaseError => error
    Cutover::Metrics.enqueue_failed(OrderConfirmationJob.name)
    Rails.logger.error("order #{id}: confirmation not enqueued (#{error.class}: #{error.message})")
  else
    begin
      ActionCable.server.broadcast(self.class.status_stream(id), status_message)
    rescue Redis::BaseError => error
      Rails.logger.warn("order #{id}: status not pushed (#{error.class}: #{error.message})")
    end
  end
end
