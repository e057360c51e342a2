# line_items on the legacy schema: integer unit_price_cents (the expand adds unit_price, kept
# by a trigger).
class LineItem < ApplicationRecord
  API_FIELDS = %w[id order_id sku quantity unit_price_cents created_at updated_at].freeze

  belongs_to :order

  scope :api_fields, -> { select(API_FIELDS) }

  def as_json(options = {}) = super({ only: API_FIELDS }.merge(options))
end
