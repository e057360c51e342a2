module Api
  class LineItemsController < BaseController
    # GET /api/orders/:order_id/line_items
    def index
      order_id = path_id(:order_id)
      return render_error(404, "order #{order_id} not found") unless Order.exists?(order_id)

      render_api({ order_id: order_id, line_items: LineItem.api_fields.where(order_id: order_id).order(:id) })
    end
  end
end
