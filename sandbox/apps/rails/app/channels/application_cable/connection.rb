module ApplicationCable
  # No authentication: the sandbox serves loopback clients only.
  class Connection < ActionCable::Connection::Base
  end
end
