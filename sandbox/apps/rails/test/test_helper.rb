# Unit tests of the app's own logic: plain Ruby, no database, Redis or Rails boot, so they run
# offline in about a second: `ruby -Itest -e 'Dir["test/unit/*_test.rb"].each { |f| require_relative f }'`
# (or bin/test).
require "bundler/setup"
require "minitest/autorun"
require "tmpdir"
ENV["METRICS_DIR"] = Dir.mktmpdir("rails-blue-metrics")
require_relative "../lib/cutover"
