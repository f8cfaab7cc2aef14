#include "fbsave/zarr_metadata.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <utility>

namespace framebroker::fbsave::zarr {

namespace {

using nlohmann::json;

// Above this many missed seqs, "framebroker" also lists them as [first, count] ranges.
constexpr uint64_t kMissedRangesAbove = 1'000'000;

void append_number(std::string& s, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}

// (t, y, x) or (t, c, y, x), with `t` first; a sequence's (t, c, z, y, x), one plane a chunk.
std::vector<uint64_t> dims(const DatasetInfo& info, uint64_t t, bool chunk) {
  if (const auto& s = info.sequence) {
    if (chunk) return {1, 1, 1, info.height, info.width};
    return {s->t, s->c, s->z, info.height, info.width};
  }
  std::vector<uint64_t> d{t};
  if (info.samples != 1) d.push_back(info.samples);
  d.push_back(info.height);
  d.push_back(info.width);
  return d;
}

}  // namespace

uint32_t chunk_frames(const DatasetInfo& info) {
  if (info.sequence) return 1;
  return std::max<uint32_t>(1, info.chunk_frames);
}

const char* blosc_cname(Compression c) {
  switch (c) {
    case Compression::Lz4:
      return "lz4";
    case Compression::Zstd:
      return "zstd";
    case Compression::None:
      break;
  }
  return nullptr;
}

std::vector<uint64_t> array_shape(const DatasetInfo& info, uint64_t frames) {
  return dims(info, frames, false);
}

std::vector<uint64_t> chunk_shape(const DatasetInfo& info) {
  return dims(info, chunk_frames(info), true);
}

json multiscales(const DatasetInfo& info, const std::string& version) {
  json axes = json::array({{{"name", "t"}, {"type", "time"}}});
  json scale = json::array({1.0});
  if (const auto& s = info.sequence) {
    if (s->interval_ms > 0) {
      axes[0]["unit"] = "second";
      scale[0] = s->interval_ms / 1000;
    }
    axes.push_back({{"name", "c"}, {"type", "channel"}});
    json z = {{"name", "z"}, {"type", "space"}};
    if (s->z_step_um > 0) z["unit"] = "micrometer";
    axes.push_back(z);
    scale.push_back(1.0);
    scale.push_back(s->z_step_um > 0 ? s->z_step_um : 1.0);
  } else if (info.samples != 1) {
    axes.push_back({{"name", "c"}, {"type", "channel"}});
    scale.push_back(1.0);
  }
  axes.push_back({{"name", "y"}, {"type", "space"}});
  axes.push_back({{"name", "x"}, {"type", "space"}});
  scale.push_back(1.0);
  scale.push_back(1.0);
  json ms = {{"name", info.stream},
             {"axes", axes},
             {"datasets", json::array({{{"path", "0"},
                                        {"coordinateTransformations",
                                         json::array({{{"type", "scale"}, {"scale", scale}}})}}})}};
  if (!version.empty()) ms["version"] = version;
  return json::array({ms});
}

json omero(const DatasetInfo& info) {
  const auto& s = *info.sequence;
  const double max =
      info.floating ? 1.0 : double((uint64_t(1) << (8 * std::min(info.bytes_per_sample, 4u))) - 1);
  json channels = json::array();
  for (uint32_t c = 0; c < s.c; ++c)
    channels.push_back({{"label", c < s.channels.size() ? s.channels[c] : std::to_string(c)},
                        {"active", true},
                        {"color", "FFFFFF"},
                        {"coefficient", 1},
                        {"family", "linear"},
                        {"inverted", false},
                        {"window", {{"start", 0}, {"end", max}, {"min", 0}, {"max", max}}}});
  return {
      {"name", info.stream},
      {"version", "0.4"},
      {"channels", channels},
      {"rdefs", {{"model", s.c > 1 ? "color" : "greyscale"}, {"defaultT", 0}, {"defaultZ", 0}}}};
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void TextPieces::own(std::string s) {
  owned_.push_back(std::move(s));
  views_.push_back(owned_.back());
}

void FrameTable::set_sequence(const SequenceInfo& s) {
  sequence_ = s;
  planes_.reset(s);
}

void FrameTable::add(const FrameRecord& f) {
  pending_.push_back({f.seq, f.camera_frame_id, f.mono_ns, f.realtime_ns, f.hw_timestamp_ns,
                      f.source_seq, f.position, f.t, f.c, f.z, session_});
  if (source_stream_.empty() && !f.source_stream.empty()) source_stream_ = f.source_stream;
}

void FrameTable::missed(uint64_t first_seq, uint64_t count) {
  missed_.add(first_seq, count);
}

void FrameTable::discontinuity(const Discontinuity& d) {
  missed_.cut();
  session_ranges_.push_back(missed_.ranges().size());
  ++session_;
  discontinuities_.push_back(discontinuity_json(d));
}

void FrameTable::advance(uint64_t frames_on_disk) {
  while (serialized_ < frames_on_disk && !pending_.empty()) {
    const Meta& m = pending_.front();
    if (serialized_ > 0)
      for (std::string* c : {&col_seq_, &col_cfid_, &col_mono_, &col_real_, &col_hw_,
                             &col_source_seq_, &col_position_, &col_index_})
        c->push_back(',');
    if (sequence_) {
      planes_.mark(sequence_->plane(m.t, m.c, m.z));
      append_number(col_position_, uint64_t(std::max<int64_t>(m.position, 0)));
      col_index_.push_back('[');
      append_number(col_index_, m.t);
      col_index_.push_back(',');
      append_number(col_index_, m.c);
      col_index_.push_back(',');
      append_number(col_index_, m.z);
      col_index_.push_back(']');
    }
    append_number(col_seq_, m.seq);
    append_number(col_cfid_, m.camera_frame_id);
    append_number(col_mono_, m.mono_ns);
    append_number(col_real_, m.realtime_ns);
    if (m.hw_timestamp_ns)
      append_number(col_hw_, *m.hw_timestamp_ns);
    else
      col_hw_ += "null";
    if (m.source_seq >= 0)
      append_number(col_source_seq_, uint64_t(m.source_seq));
    else
      col_source_seq_ += "null";
    pending_.pop_front();
    ++serialized_;
  }
  // Seqs of an earlier broker than the first frame not on disk are all below the horizon.
  const uint64_t horizon = pending_.empty() ? UINT64_MAX : pending_.front().seq;
  const uint32_t horizon_session = pending_.empty() ? UINT32_MAX : pending_.front().session;
  const auto& ranges = missed_.ranges();
  while (missed_range_ < ranges.size()) {
    const auto [first, count] = ranges[missed_range_];
    const auto range_session =
        uint32_t(std::upper_bound(session_ranges_.begin(), session_ranges_.end(), missed_range_) -
                 session_ranges_.begin());
    if (range_session > horizon_session) break;
    const uint64_t limit = range_session < horizon_session ? UINT64_MAX : horizon;
    while (missed_offset_ < count && first + missed_offset_ < limit) {
      if (missed_listed_ > 0) missed_text_.push_back(',');
      append_number(missed_text_, first + missed_offset_);
      ++missed_offset_;
      ++missed_listed_;
    }
    if (missed_offset_ < count) break;
    ++missed_range_;
    missed_offset_ = 0;
  }
}

json FrameTable::missed_ranges() const {
  json ranges = json::array();
  uint64_t left = missed_listed_;
  for (const auto& [first, count] : missed_.ranges()) {
    if (left == 0) break;
    const uint64_t n = std::min(left, count);
    ranges.push_back({first, n});
    left -= n;
  }
  return ranges;
}

void FrameTable::append_attribute(const DatasetInfo& info, bool complete, TextPieces& out) const {
  const char* cname = blosc_cname(info.compression);
  json fb = {
      {"version", 1},
      {"complete", complete},
      {"stream", info.stream},
      {"camera", info.camera},
      {"camera_properties", info.camera_properties},
      {"pixel_type", info.pixel_type},
      {"width", info.width},
      {"height", info.height},
      {"chunk_frames", chunk_frames(info)},
      {"compression", cname ? json(cname) : json(nullptr)},
      {"frames_expected", info.frames_expected.value_or(serialized_ + missed_listed_)},
      {"frames_written", serialized_},
      {"frames_missed", missed_listed_},
      {"source_stream", source_stream_.empty() ? json(nullptr) : json(source_stream_)},
  };
  if (missed_listed_ > kMissedRangesAbove) fb["missed_ranges"] = missed_ranges();
  if (!discontinuities_.empty()) fb["discontinuities"] = discontinuities_;
  if (sequence_) {
    fb["frames_expected"] = sequence_->planes();
    fb["sequence"] = planes_.json(*sequence_, missed_, complete);
  }
  std::string head = dump(fb);
  head.pop_back();  // its closing brace: the columns follow
  out.own(std::move(head));
  for (const auto& [name, column] : {std::pair{R"(,"frames":{"seq":[)", &col_seq_},
                                     {R"(],"camera_frame_id":[)", &col_cfid_},
                                     {R"(],"mono_ns":[)", &col_mono_},
                                     {R"(],"realtime_ns":[)", &col_real_},
                                     {R"(],"hw_timestamp_ns":[)", &col_hw_},
                                     {R"(],"source_seq":[)", &col_source_seq_}}) {
    out.borrow(name);
    out.borrow(*column);
  }
  if (sequence_) {  // position and [t, c, z] index of each frame, in the columns' order
    out.borrow(R"(],"position":[)");
    out.borrow(col_position_);
    out.borrow(R"(],"index":[)");
    out.borrow(col_index_);
  }
  out.borrow(R"(]},"missed_seqs":[)");
  out.borrow(missed_text_);
  out.borrow("]}");
}

std::string zgroup_v2() {
  return R"({"zarr_format":2})"
         "\n";
}

std::string zarray_v2(const DatasetInfo& info, uint64_t frames) {
  std::string dtype = info.floating ? "<f" : "<u";
  if (info.bytes_per_sample == 1) dtype = info.floating ? "|f" : "|u";
  dtype += std::to_string(info.bytes_per_sample);
  json compressor = nullptr;
  if (const char* cname = blosc_cname(info.compression))
    compressor = {{"id", "blosc"},
                  {"cname", cname},
                  {"clevel", info.clevel},
                  {"shuffle", 1},
                  {"blocksize", 0}};
  const json j = {{"zarr_format", 2},
                  {"shape", array_shape(info, frames)},
                  {"chunks", chunk_shape(info)},
                  {"dtype", dtype},
                  {"order", "C"},
                  {"fill_value", 0},
                  {"filters", nullptr},
                  {"compressor", compressor},
                  {"dimension_separator", "."}};
  return dump(j) + "\n";
}

void zattrs_v2(const DatasetInfo& info, const FrameTable& table, bool complete, TextPieces& out) {
  std::string head = R"({"multiscales":)" + dump(multiscales(info, "0.4"));
  if (info.sequence) head += R"(,"omero":)" + dump(omero(info));
  out.own(head + R"(,"framebroker":)");
  table.append_attribute(info, complete, out);
  out.borrow("}\n");
}

std::string chunk_key_v2(const DatasetInfo& info, uint64_t chunk) {
  if (const auto& s = info.sequence) {
    const auto [t, c, z] = s->tcz_of_plane(chunk);
    return std::to_string(t) + "." + std::to_string(c) + "." + std::to_string(z) + ".0.0";
  }
  return std::to_string(chunk) + (info.samples == 1 ? ".0.0" : ".0.0.0");
}

namespace {

const char* data_type_v3(const DatasetInfo& info) {
  if (info.floating) return "float32";
  return info.bytes_per_sample == 1 ? "uint8" : info.bytes_per_sample == 2 ? "uint16" : "uint32";
}

// The codecs of one chunk: bytes, then the compressor.
json chunk_codecs_v3(const DatasetInfo& info) {
  json codecs = json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}});
  switch (info.compression) {
    case Compression::Lz4:
      codecs.push_back({{"name", "blosc"},
                        {"configuration",
                         {{"cname", "lz4"},
                          {"clevel", info.clevel},
                          {"shuffle", "shuffle"},
                          {"typesize", info.bytes_per_sample},
                          {"blocksize", 0}}}});
      break;
    case Compression::Zstd:
      codecs.push_back(
          {{"name", "zstd"}, {"configuration", {{"level", info.clevel}, {"checksum", false}}}});
      break;
    case Compression::None:
      break;
  }
  return codecs;
}

}  // namespace

std::string array_json_v3(const DatasetInfo& info, uint64_t frames,
                          const std::vector<uint64_t>& grid, const std::vector<uint64_t>& inner) {
  json codecs = chunk_codecs_v3(info);
  if (!inner.empty())
    codecs = json::array(
        {{{"name", "sharding_indexed"},
          {"configuration",
           {{"chunk_shape", inner},
            {"codecs", codecs},
            {"index_codecs",
             json::array({{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}},
                          {{"name", "crc32c"}}})},
            {"index_location", "end"}}}}});
  json names = json::array({"t"});
  if (info.sequence)
    names.insert(names.end(), {"c", "z"});
  else if (info.samples != 1)
    names.push_back("c");
  names.insert(names.end(), {"y", "x"});
  const json j = {
      {"zarr_format", 3},
      {"node_type", "array"},
      {"shape", array_shape(info, frames)},
      {"data_type", data_type_v3(info)},
      {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", grid}}}}},
      {"chunk_key_encoding", {{"name", "default"}, {"configuration", {{"separator", "/"}}}}},
      {"fill_value", 0},
      {"codecs", codecs},
      {"dimension_names", names},
  };
  return dump(j) + "\n";
}

void group_json_v3(const DatasetInfo& info, const FrameTable& table, bool complete,
                   TextPieces& out) {
  json ome = {{"version", "0.5"}, {"multiscales", multiscales(info, "")}};
  if (info.sequence) {
    ome["omero"] = omero(info);
    ome["omero"].erase("version");  // NGFF 0.5 states it once, in "ome"
  }
  out.own(R"({"zarr_format":3,"node_type":"group","attributes":{"ome":)" + dump(ome) +
          R"(,"framebroker":)");
  table.append_attribute(info, complete, out);
  out.borrow("}}\n");
}

std::string chunk_key_v3(const DatasetInfo& info, uint64_t file) {
  if (const auto& s = info.sequence) {
    const auto [t, c, z] = s->tcz_of_plane(file);
    return "c/" + std::to_string(t) + "/" + std::to_string(c) + "/" + std::to_string(z) + "/0/0";
  }
  return "c/" + std::to_string(file) + (info.samples == 1 ? "/0/0" : "/0/0/0");
}

}  // namespace framebroker::fbsave::zarr
