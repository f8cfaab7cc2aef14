#include "fbsave/channels_writer.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "fbsave/zarr_group.hpp"

namespace framebroker::fbsave {

namespace {

std::string format_text(const DatasetInfo& i) {
  return std::to_string(i.width) + "x" + std::to_string(i.height) + " " + i.pixel_type +
         (i.stride != i.frame_bytes() / i.height ? " (" + std::to_string(i.stride) + "-byte rows)"
                                                 : "");
}

}  // namespace

// Stream c's side of a ChannelSet: runs on that stream's writer thread.
class ChannelWriter final : public Writer {
 public:
  ChannelWriter(ChannelSet& set, uint32_t c) : set_(set), c_(c), ch_(*set.channels_[c]) {}

  void begin(const DatasetInfo& info) override {
    std::lock_guard lock(set_.mu_);
    set_.begin(c_, info);
  }
  void write(const FrameRecord& frame) override { write_batch(std::span(&frame, 1)); }
  void write_batch(std::span<const FrameRecord> frames) override {
    records_.assign(frames.begin(), frames.end());  // reuses its capacity after the first batch
    std::lock_guard lock(set_.mu_);
    const uint32_t channels = uint32_t(set_.channels_.size());
    for (FrameRecord& r : records_) {
      if (!ch_.first_seq) ch_.first_seq = r.seq;
      const uint64_t t = ch_.next_t++;
      if (t >= set_.frames_)
        throw std::runtime_error("cannot write " + set_.path_ + ": " + ch_.stream + "'s seq " +
                                 std::to_string(r.seq) + " would be frame " +
                                 std::to_string(t + 1) + " of an image of " +
                                 std::to_string(set_.frames_) + " (--frames)");
      r.t = uint32_t(t);
      r.c = c_;
      r.z = 0;
      r.position = int64_t(t * channels + c_);
    }
    set_.image_->write_batch(records_);
    ch_.written += records_.size();
  }
  void missed(uint64_t first_seq, uint64_t count) override {
    std::lock_guard lock(set_.mu_);
    if (!ch_.first_seq) ch_.first_seq = first_seq;
    ch_.next_t += count;  // their planes stay at the fill value
    ch_.missed.add(first_seq, count);
  }
  void discontinuity(const Discontinuity& d) override {
    std::lock_guard lock(set_.mu_);
    ch_.missed.cut();
    Discontinuity at = d;
    at.frame = ch_.next_t;  // as this channel's t
    ch_.discontinuities.push_back(discontinuity_json(at));
  }
  void checkpoint() override {
    std::lock_guard lock(set_.mu_);
    if (!set_.image_begun_ || set_.finished_) return;
    set_.image_->checkpoint();
    set_.write_channels(false);
  }
  // The image is finished by ChannelSet::finish(), once every channel's saver has ended.
  void finish() override {
    std::lock_guard lock(set_.mu_);
    if (set_.image_begun_ && !set_.finished_) set_.write_channels(false);
  }
  Totals totals() const override {
    std::lock_guard lock(set_.mu_);
    return {ch_.written, ch_.missed.count(), ch_.info ? ch_.written * ch_.info->frame_bytes() : 0};
  }

 private:
  ChannelSet& set_;
  const uint32_t c_;
  ChannelSet::Channel& ch_;
  std::vector<FrameRecord> records_;
};

ChannelSet::ChannelSet(std::unique_ptr<Writer> image, std::string path, int zarr_version,
                       std::vector<std::string> streams, uint64_t frames)
    : image_(std::move(image)),
      path_(std::move(path)),
      zarr_version_(zarr_version),
      frames_(frames) {
  for (auto& s : streams) {
    channels_.push_back(std::make_unique<Channel>());
    channels_.back()->stream = std::move(s);
  }
}

ChannelSet::~ChannelSet() = default;

std::unique_ptr<Writer> ChannelSet::channel(uint32_t c) {
  return std::make_unique<ChannelWriter>(*this, c);
}

void ChannelSet::begin(uint32_t c, const DatasetInfo& info) {
  Channel& ch = *channels_[c];
  if (info.sequence)
    throw std::runtime_error("cannot save " + ch.stream + " as a channel of " + path_ +
                             ": its frames belong to a sequence (axes " + info.sequence->axes +
                             "); save such streams without --as-channels");
  for (const auto& other : channels_)
    if (other->info &&
        (other->info->width != info.width || other->info->height != info.height ||
         other->info->pixel_type != info.pixel_type || other->info->stride != info.stride))
      throw std::runtime_error("cannot save " + ch.stream + " as a channel of " + path_ + ": " +
                               other->stream + " is " + format_text(*other->info) + ", " +
                               ch.stream + " is " + format_text(info) +
                               "; --as-channels needs streams of one format (without it, each "
                               "stream is an image of its own)");
  ch.info = info;
  if (image_begun_) return;
  DatasetInfo image = info;
  SequenceInfo s;
  s.t = uint32_t(frames_);
  s.c = uint32_t(channels_.size());
  s.axes = "t=" + std::to_string(s.t) + ",c=" + std::to_string(s.c);
  s.order = "tc";
  image.stream.clear();
  for (const auto& other : channels_) {
    s.channels.push_back(other->stream);
    image.stream += (image.stream.empty() ? "" : ",") + other->stream;
  }
  image.camera = image.stream;
  image.sequence = std::move(s);
  image_->begin(image);
  image_begun_ = true;
  write_channels(false);
}

void ChannelSet::write_channels(bool complete) {
  nlohmann::json channels = nlohmann::json::array();
  nlohmann::json streams = nlohmann::json::array();
  for (size_t c = 0; c < channels_.size(); ++c) {
    const Channel& ch = *channels_[c];
    streams.push_back(ch.stream);
    nlohmann::json j = {{"c", c},
                        {"stream", ch.stream},
                        {"first_seq", ch.first_seq ? nlohmann::json(*ch.first_seq) : nullptr},
                        {"frames_written", ch.written},
                        {"frames_missed", ch.missed.count()},
                        {"missed_seqs", ch.missed.ranges_json()},
                        {"discontinuities", ch.discontinuities}};
    if (ch.info) {
      j["camera"] = ch.info->camera;
      j["camera_properties"] = ch.info->camera_properties;
      j["pixel_type"] = ch.info->pixel_type;
      j["width"] = ch.info->width;
      j["height"] = ch.info->height;
    }
    channels.push_back(std::move(j));
  }
  zarr::write_group(path_ + "/channels", zarr_version_,
                    {{"framebroker",
                      {{"version", 1},
                       {"complete", complete},
                       {"streams", streams},
                       {"frames_expected", frames_},
                       {"channels", channels}}}});
}

std::string ChannelSet::finish() {
  std::lock_guard lock(mu_);
  if (!image_begun_ || finished_) return {};
  finished_ = true;
  std::string error;
  try {
    image_->finish();
  } catch (const std::exception& e) {
    error = e.what();
  }
  try {
    write_channels(error.empty());
  } catch (const std::exception& e) {
    if (error.empty()) error = e.what();
  }
  return error;
}

}  // namespace framebroker::fbsave
