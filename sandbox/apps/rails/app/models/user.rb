# users on the legacy schema. The expand migration adds email_normalized (kept by a trigger);
# this app neither reads nor writes it, so it works on both shapes.
class User < ApplicationRecord
  API_FIELDS = %w[id email name created_at updated_at].freeze

  has_many :orders, dependent: :restrict_with_exception

  # Reads name their columns: columns added by a migration never leak into answers.
  scope :api_fields, -> { select(API_FIELDS) }

  def as_json(options = {}) = super({ only: API_FIELDS }.merge(options))
end
