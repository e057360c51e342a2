module Api
  class OrdersController < BaseController
    # GET /api/users/:user_id/orders: the 20 newest, newest first. An unknown user has no orders
    # (200, empty list), as on the other color.
    def index
      user_id = path_id(:user_id)
      orders = Order.api_fields.where(user_id: user_id).order(id: :desc).limit(20)
      render_api({ user_id: user_id, orders: orders })
    end

    def show
      order = Order.api_fields.find_by(id: path_id)
      return render_error(404, "order #{path_id} not found") unless order

      render_api order
    end

    def create
      attributes = Cutover::Params.order(json_body)
      order = Order.place!(**attributes)
      render_api order, status: :created, location: api_order_path(order)
    rescue ActiveRecord::RecordInvalid => error
      raise unless error.record.errors.include?(:user)

      render_error(422, "user #{attributes[:user_id]} does not exist")
    rescue ActiveRecord::InvalidForeignKey # the user was deleted between validation and insert
      render_error(422, "user #{attributes[:user_id]} does not exist")
    end
  end
end
