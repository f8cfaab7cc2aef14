// A broker as framebrokerd's main() sets it up, on a thread of this test process, in a private
// runtime directory and instance: for tests that must see inside the broker's process (every
// allocation counted, every memcpy wrapped), where a framebrokerd child would hide it.
#pragma once

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "apply_config.hpp"
#include "broker.hpp"
#include "config.hpp"
#include "framebroker/client.hpp"

namespace fbtest {

class BrokerThread {
 public:
  // `tag` names the runtime directory and instance; `camera_spec` as framebrokerd --camera
  // (empty: no camera).
  BrokerThread(const std::string& tag, const std::string& camera_spec) {
    namespace fd = framebroker::daemon;
    std::string dir = "/tmp/fb-" + tag + "-XXXXXX";
    if (!::mkdtemp(dir.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    config_.instance = tag + std::to_string(::getpid());
    config_.runtime_dir = dir_;
    config_.default_camera = false;
    if (!camera_spec.empty()) config_.cameras.push_back(fd::parse_camera_spec(camera_spec));
    fd::finalize(config_);
    broker_ = std::make_unique<fd::Broker>(io_, config_.instance, config_.socket_path);
    {
      auto state = broker_->lock_state();
      broker_->set_publish_limits(config_.publish_group_id, config_.publish_group,
                                  config_.max_publish_mb << 20, config_.group_id);
      for (const auto& cam : config_.cameras) fd::add_camera(*broker_, cam);
      broker_->listen(config_.group_id);
    }
    thread_ = std::thread([this] { io_.run(); });
  }

  ~BrokerThread() {
    boost::asio::post(io_, [this] {
      auto state = broker_->lock_state();
      broker_->shutdown();
      io_.stop();
    });
    thread_.join();
    broker_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  BrokerThread(const BrokerThread&) = delete;
  BrokerThread& operator=(const BrokerThread&) = delete;

  const std::string& socket() const { return config_.socket_path; }
  const std::string& instance() const { return config_.instance; }
  framebroker::Client connect(const std::string& name) const {
    return framebroker::Client::connect({.socket_path = config_.socket_path, .client_name = name});
  }

 private:
  std::string dir_;
  framebroker::daemon::BrokerConfig config_;
  boost::asio::io_context io_{1};
  std::unique_ptr<framebroker::daemon::Broker> broker_;
  std::thread thread_;
};

}  // namespace fbtest
