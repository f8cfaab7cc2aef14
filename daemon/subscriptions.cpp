#include "subscriptions.hpp"

#include <stdexcept>

namespace framebroker::daemon {

Subscriptions::Id Subscriptions::add(uint64_t connection, const std::string& stream) {
  const Id id = next_id_++;
  if (!by_connection_.emplace(std::pair(connection, stream), id).second)
    throw std::logic_error("connection " + std::to_string(connection) +
                           " is already registered on " + stream);
  entries_.emplace(id, Entry{connection, stream});
  return id;
}

void Subscriptions::remove(Id id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  by_connection_.erase(std::pair(it->second.connection, it->second.stream));
  entries_.erase(it);
}

const Subscriptions::Entry* Subscriptions::find(Id id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

std::optional<Subscriptions::Id> Subscriptions::find(uint64_t connection,
                                                     std::string_view stream) const {
  auto it = by_connection_.find(std::pair(connection, std::string(stream)));
  if (it == by_connection_.end()) return std::nullopt;
  return it->second;
}

std::vector<Subscriptions::Id> Subscriptions::of_connection(uint64_t connection) const {
  std::vector<Id> out;
  for_connection(connection, [&](Id id, const std::string&) { out.push_back(id); });
  return out;
}

std::vector<Subscriptions::Id> Subscriptions::of_stream(std::string_view stream) const {
  std::vector<Id> out;
  for (const auto& [id, e] : entries_)
    if (e.stream == stream) out.push_back(id);
  return out;
}

}  // namespace framebroker::daemon
