#include "fanout.hpp"

#include <algorithm>
#include <utility>

namespace framebroker::daemon {

Fanout::~Fanout() {
  for (auto& [id, s] : subs_) drop_all(s);
  clear_latest();
}

void Fanout::take_ref(const FrameRef& f) {
  refs_.add_ref(f);
}

void Fanout::drop_ref(const FrameRef& f) {
  refs_.drop_ref(f);
}

namespace {

bool queued(const internal::RingQueue<FrameRef>& q, const FrameRef& f) {
  for (size_t i = 0; i < q.size(); ++i)
    if (q[i] == f) return true;
  return false;
}

uint32_t queued_on(const internal::RingQueue<FrameRef>& q, uint32_t gen, uint32_t slot) {
  uint32_t n = 0;
  for (size_t i = 0; i < q.size(); ++i) n += q[i].gen == gen && q[i].slot == slot;
  return n;
}

}  // namespace

const Fanout::HoldTable* Fanout::Subscriber::table(uint32_t gen) const {
  for (const auto& t : tables)
    if (t.gen == gen) return &t;
  return nullptr;
}

Fanout::HoldTable* Fanout::Subscriber::table(uint32_t gen) {
  return const_cast<HoldTable*>(std::as_const(*this).table(gen));
}

bool Fanout::Subscriber::held_slot(uint32_t gen, uint32_t slot) const {
  const HoldTable* t = table(gen);
  return t && t->held(slot);
}

Fanout::HoldTable& Fanout::Subscriber::table_for(uint32_t gen, uint32_t slots) {
  HoldTable* t = table(gen);
  if (!t) {  // an empty one of an older generation (all kNotHeld), else a new one
    auto empty = std::find_if(tables.begin(), tables.end(), [](const auto& e) { return !e.count; });
    t = empty != tables.end() ? &*empty : &tables.emplace_back();
    t->gen = gen;
  }
  if (t->seq.size() < slots) t->seq.resize(slots, HoldTable::kNotHeld);
  return *t;
}

void Fanout::drop_all(Subscriber& s) {
  drop_queue(s);
  for (auto& t : s.tables) {
    for (uint32_t slot = 0; t.count && slot < t.seq.size(); ++slot) {
      if (t.seq[slot] == HoldTable::kNotHeld) continue;
      drop_ref({t.gen, slot, t.seq[slot]});
      t.seq[slot] = HoldTable::kNotHeld;
      --t.count;
    }
  }
  s.held = 0;
}

SubscriberOptions Fanout::effective(SubscriberOptions o) const {
  if (o.mode == SubscriberMode::Every && o.max_hold == 0) o.max_hold = default_max_hold();
  if (o.mode == SubscriberMode::Latest && o.window == 0) o.window = 1;
  o.max_hold = std::min(o.max_hold, max_hold_cap());
  o.window = std::min(o.window, max_hold_cap());
  return o;
}

void Fanout::set_slots(uint32_t slots) {
  slots_ = slots;
  for (auto& [id, s] : subs_) {
    s.opt = effective(s.requested);
    s.queue.reserve(slots_);
  }
}

SubscriberOptions Fanout::subscribe(SubscriberId id, SubscriberOptions requested) {
  const SubscriberOptions o = effective(requested);
  auto& s = subs_[id];
  s.requested = requested;
  s.opt = o;
  s.active = true;
  s.newer_pending = false;
  s.queue.reserve(slots_);
  s.tables.reserve(2);  // the current generation's and, across a change, the last one's
  if (o.from_latest && latest_ && !holds(s, *latest_)) enqueue(s, *latest_);
  return o;
}

void Fanout::unsubscribe(SubscriberId id) {
  auto it = subs_.find(id);
  if (it == subs_.end()) return;
  drop_queue(it->second);
  it->second.messages.clear();
  it->second.active = false;
  it->second.newer_pending = false;
  if (it->second.held == 0) subs_.erase(it);
}

void Fanout::remove(SubscriberId id) {
  auto it = subs_.find(id);
  if (it == subs_.end()) return;
  drop_all(it->second);
  subs_.erase(it);
}

bool Fanout::active(SubscriberId id) const {
  auto it = subs_.find(id);
  return it != subs_.end() && it->second.active;
}

void Fanout::publish(const FrameRef& frame) {
  take_ref(frame);  // the latest cache
  // latest_ moves before the old reference goes, so that a RefCounter looking at latest() sees
  // the cache's own reference already gone.
  const auto previous = std::exchange(latest_, frame);
  if (previous) drop_ref(*previous);
  for (auto& [id, s] : subs_)
    if (s.active) offer(s, frame);
}

void Fanout::clear_latest() {
  if (const auto previous = std::exchange(latest_, std::nullopt)) drop_ref(*previous);
}

void Fanout::offer(Subscriber& s, const FrameRef& f) {
  if (s.opt.mode == SubscriberMode::Every) {
    if (s.in_flight() < s.opt.max_hold)
      enqueue(s, f);
    else
      ++s.c.missed;
    return;
  }
  if (s.in_flight() < s.opt.window) {
    enqueue(s, f);
    return;
  }
  // The frame that was waiting for room is superseded by this one.
  if (s.newer_pending) ++s.c.conflated;
  s.newer_pending = true;
}

void Fanout::enqueue(Subscriber& s, const FrameRef& f) {
  take_ref(f);
  s.queue.push_back(f);
}

void Fanout::top_up_latest(Subscriber& s) {
  if (!s.active || s.opt.mode != SubscriberMode::Latest || !s.newer_pending) return;
  if (s.in_flight() >= s.opt.window) return;
  if (!latest_)
    ++s.c.conflated;  // the cache was cleared (new generation): it is gone
  else if (!holds(s, *latest_))
    enqueue(s, *latest_);
  s.newer_pending = false;
}

bool Fanout::holds(const Subscriber& s, const FrameRef& f) {
  return s.held_slot(f.gen, f.slot) || queued(s.queue, f);
}

void Fanout::drop_queue(Subscriber& s) {
  for (size_t i = 0; i < s.queue.size(); ++i) drop_ref(s.queue[i]);
  s.queue.clear();
}

std::vector<FrameRef> Fanout::take_sendable(SubscriberId id, size_t limit) {
  std::vector<FrameRef> out;
  while (out.size() < limit) {
    const auto f = take_next(id);
    if (!f) break;
    out.push_back(*f);
  }
  return out;
}

std::optional<FrameRef> Fanout::take_next(SubscriberId id) {
  auto it = subs_.find(id);
  if (it == subs_.end() || it->second.queue.empty()) return std::nullopt;
  auto& s = it->second;
  const FrameRef f = s.queue.front();
  s.queue.pop_front();
  auto& t = s.table_for(f.gen, std::max(slots_, f.slot + 1));
  if (t.seq[f.slot] == HoldTable::kNotHeld) {  // (a held slot keeps its seq, as it always did)
    t.seq[f.slot] = f.seq;
    ++t.count;
    ++s.held;
  }
  ++s.c.delivered;
  s.c.last_seq = int64_t(f.seq);
  return f;
}

ReleaseResult Fanout::release(SubscriberId id, const FrameRef& frame) {
  auto it = subs_.find(id);
  if (it == subs_.end()) return ReleaseResult::NotHeld;
  auto& s = it->second;
  HoldTable* t = s.table(frame.gen);
  if (!t || !t->held(frame.slot) || t->seq[frame.slot] != frame.seq) return ReleaseResult::NotHeld;
  t->seq[frame.slot] = HoldTable::kNotHeld;
  --t->count;
  --s.held;
  drop_ref(frame);
  if (!s.active && s.held == 0) {
    subs_.erase(it);
    return ReleaseResult::Ok;
  }
  top_up_latest(s);
  return ReleaseResult::Ok;
}

uint32_t Fanout::every_room() const {
  uint32_t room = UINT32_MAX;
  for (const auto& [id, s] : subs_)
    if (s.active && s.opt.mode == SubscriberMode::Every)
      room = std::min(room, s.opt.max_hold > s.in_flight() ? s.opt.max_hold - s.in_flight() : 0);
  return room;
}

SubscriberCounters Fanout::counters(SubscriberId id) const {
  auto it = subs_.find(id);
  if (it == subs_.end()) return {};
  SubscriberCounters c = it->second.c;
  c.held = it->second.held;
  c.queued = uint32_t(it->second.queue.size());
  return c;
}

SubscriberOptions Fanout::options(SubscriberId id) const {
  auto it = subs_.find(id);
  return it == subs_.end() ? SubscriberOptions{} : it->second.opt;
}

std::vector<Fanout::SubscriberId> Fanout::subscriber_ids() const {
  std::vector<SubscriberId> ids;
  subscriber_ids(ids);
  return ids;
}

void Fanout::subscriber_ids(std::vector<SubscriberId>& out) const {
  out.clear();
  for (const auto& [id, s] : subs_) out.push_back(id);
}

std::vector<Holder> Fanout::holders(uint32_t gen, uint32_t slot) const {
  std::vector<Holder> out;
  for (const auto& [id, s] : subs_) {
    if (s.held_slot(gen, slot))
      out.push_back({id, false});
    else if (queued_on(s.queue, gen, slot))
      out.push_back({id, true});
  }
  return out;
}

uint32_t Fanout::refs_on(uint32_t gen, uint32_t slot) const {
  uint32_t n = (latest_ && latest_->gen == gen && latest_->slot == slot) ? 1 : 0;
  for (const auto& [id, s] : subs_) {
    n += uint32_t(s.held_slot(gen, slot));
    n += queued_on(s.queue, gen, slot);
  }
  return n;
}

void Fanout::queue_message(const Message& m, uint64_t before_seq) {
  for (auto& [id, s] : subs_)
    if (s.active) s.messages.emplace_back(before_seq, m);
}

void Fanout::queue_message_to(SubscriberId id, const Message& m, uint64_t before_seq) {
  auto it = subs_.find(id);
  if (it == subs_.end() || !it->second.active) return;
  auto& msgs = it->second.messages;
  // Kept in before_seq order, so that the front is always the first due.
  auto at =
      std::find_if(msgs.begin(), msgs.end(), [&](const auto& e) { return e.first > before_seq; });
  msgs.emplace(at, before_seq, m);
}

Fanout::Message Fanout::take_message(SubscriberId id) {
  auto it = subs_.find(id);
  if (it == subs_.end() || it->second.messages.empty()) return nullptr;
  auto& s = it->second;
  const uint64_t before = s.messages.front().first;
  if (!s.queue.empty() && s.queue.front().seq < before) return nullptr;
  Message m = std::move(s.messages.front().second);
  s.messages.pop_front();
  return m;
}

bool Fanout::has_messages(SubscriberId id) const {
  auto it = subs_.find(id);
  return it != subs_.end() && !it->second.messages.empty();
}

}  // namespace framebroker::daemon
