# Puma for 2 shared cores. Single mode (no cluster), 5 threads: see README.md "Puma setting" for
# the memory measured. One process also means one fault state and one exit code for the crash
# fault, as the rehearsals expect of an app.
require_relative "../lib/cutover/env"
require_relative "../lib/cutover/request_log"

threads_count = Cutover::Env.threads
threads threads_count, threads_count
workers Cutover::Env.workers # 0 = single mode (the default here)

# Loopback only, port from PORT.
bind "tcp://127.0.0.1:#{Cutover::Env.port}"
environment ENV.fetch("RAILS_ENV", "production")
pidfile ENV["PIDFILE"] if ENV["PIDFILE"]

# Green keeps idle keep-alive connections to blue for up to 30 s: blue must keep them longer.
persistent_timeout 120
first_data_timeout 30
# The 2 s a stop may take for in-flight requests before Puma gives up on them.
worker_shutdown_timeout 2 if Cutover::Env.workers.positive?

# Puma's own messages (boot, stop) as JSON lines like the app's, so the whole log file parses.
puma_color = Cutover::Env.color
puma_release = Cutover::RequestLog.release
log_formatter { |message| Cutover::RequestLog.message_line(message, level: "info", color: puma_color, release: puma_release) }
