module Api
  class UsersController < BaseController
    def show
      user = User.api_fields.find_by(id: path_id)
      return render_error(404, "user #{path_id} not found") unless user

      render_api user
    end

    def create
      attributes = Cutover::Params.user(json_body)
      user = User.create!(attributes)
      render_api user, status: :created, location: api_user_path(user)
    rescue ActiveRecord::RecordNotUnique
      render_error(409, "email '#{attributes[:email]}' already taken")
    end
  end
end
