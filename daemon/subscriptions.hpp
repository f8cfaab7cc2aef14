// Subscriptions: the one owner of "connection C subscribes to stream S as subscriber N".
//
// The broker adds an entry when a client subscribes and removes it in exactly one place
// (Broker::settle), whether the subscription ended by Unsubscribe, by disconnect or because its
// stream went away. Fanout owns what a subscriber queued and holds; this registry only says whose
// subscriber it is, so the two never disagree about who exists.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace framebroker::daemon {

class Subscriptions {
 public:
  using Id = uint64_t;
  struct Entry {
    uint64_t connection;
    std::string stream;
  };

  // Registers a new subscriber of `connection` on `stream`; the pair must not be registered.
  Id add(uint64_t connection, const std::string& stream);
  void remove(Id id);

  const Entry* find(Id id) const;
  std::optional<Id> find(uint64_t connection, std::string_view stream) const;
  // Copies, so that the caller may end subscriptions while walking them.
  std::vector<Id> of_connection(uint64_t connection) const;
  std::vector<Id> of_stream(std::string_view stream) const;
  // Calls f(id, stream) for each subscription of `connection`, allocating nothing. f must not
  // add or remove subscriptions.
  template <typename F>
  void for_connection(uint64_t connection, F&& f) const {
    for (auto it = by_connection_.lower_bound({connection, std::string()});
         it != by_connection_.end() && it->first.first == connection; ++it)
      f(it->second, it->first.second);
  }
  const std::map<Id, Entry>& all() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  std::map<Id, Entry> entries_;
  std::map<std::pair<uint64_t, std::string>, Id, std::less<>> by_connection_;
  Id next_id_ = 1;
};

}  // namespace framebroker::daemon
