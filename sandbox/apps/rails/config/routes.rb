Rails.application.routes.draw do
  # Ids are 1-18 digits like the Python app's, so /api/users/abc is an unknown route (404).
  id = /\d{1,18}/

  scope format: false do
    get "/healthz", to: "ops#healthz"
    get "/readyz", to: "ops#readyz"
    get "/metrics", to: "ops#metrics"
    get "/openapi.json", to: "ops#openapi"
    get "/__flags", to: "flags#show"
    get "/__fault", to: "faults#show"
    post "/__fault", to: "faults#create"
    delete "/__fault", to: "faults#destroy"
    post "/__fault/report_exception", to: "faults#report_exception"

    # Answers only under the insecure fault's unauthenticated_route weakness (else the usual 404).
    get "/api/admin/users", to: "admin#users"

    namespace :api do
      resources :users, only: %i[show create], constraints: { id: id } do
        resources :orders, only: :index, constraints: { user_id: id }
      end
      resources :orders, only: %i[show create], constraints: { id: id } do
        resources :line_items, only: :index, constraints: { order_id: id }
      end
    end
  end

  # Everything else: the same JSON 404 (or 405 for a known path) as the other color.
  match "*unmatched", to: "errors#not_found", via: :all, format: false
  root to: "errors#not_found", via: :all
end
