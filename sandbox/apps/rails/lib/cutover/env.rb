module Cutover
  # Settings read from the environment, validated once at boot (a bad value stops the app
  # before it binds its port, with the variable's name in the message).
  module Env
    module_function

    def color(env = ENV)
      value = env.fetch("APP_COLOR", "blue")
      raise ArgumentError, "APP_COLOR must be blue or green, got #{value.inspect}" unless %w[blue green].include?(value)

      value
    end

    def integer(name, default, range, env = ENV)
      raw = env.fetch(name, default.to_s)
      value = Integer(raw, 10)
      raise ArgumentError, "#{name}=#{raw} is outside #{range}" unless range.cover?(value)

      value
    rescue ArgumentError, TypeError => error
      raise if error.message.start_with?(name)

      raise ArgumentError, "#{name}=#{raw.inspect} is not an integer"
    end

    def threads(env = ENV) = integer("RAILS_MAX_THREADS", 5, 1..64, env)
    def workers(env = ENV) = integer("WEB_CONCURRENCY", 0, 0..16, env)
    def port(env = ENV) = integer("PORT", 18081, 1024..65_535, env)
    def cable_workers(env = ENV) = integer("CABLE_WORKERS", 2, 1..16, env)

    # Pool: every Puma thread and every Action Cable worker may hold one connection at once.
    def db_pool(env = ENV) = threads(env) + cable_workers(env)

    def redis_url(env = ENV) = env.fetch("REDIS_URL", "redis://127.0.0.1:6379/0")

    # prometheus-client-mmap keeps each process's samples in files; web and worker use separate
    # directories so each can wipe its own stale files at boot without touching the other's.
    def metrics_dir(role, env = ENV)
      base = env.fetch("METRICS_DIR") { File.expand_path("../../tmp/metrics", __dir__) }
      File.join(base, role)
    end
  end
end
