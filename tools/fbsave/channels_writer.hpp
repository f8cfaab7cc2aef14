// fbsave --as-channels: several streams saved as the channels of one image.
//
// Design: one image writer (Zarr v2 or v3) is given a sequence of its own, axes t=N,c=S (N:
// --frames, S: the streams), so that it places each frame's plane by its index (t, c, 0) as it
// does for a broker's sequence, and lists the planes no frame came for. Each stream keeps its
// own saver loop and writer thread (as in a group of streams), and feeds a ChannelSet::channel():
// a Writer that numbers its stream's seqs in order from the first one accounted for (t = 0, 1,
// ...; a missed seq takes its t too, so frame n of stream i lands at t=n, c=i and a missed frame
// leaves its plane at the fill value), and hands the frame to the shared image writer under a
// lock.
//
// Each channel's own per-frame index: the image's "framebroker" columns (seq, camera_frame_id,
// timestamps) hold every frame of every channel with its "index" [t, c, z], so a channel's
// frames are those with c = i. Seqs of different streams are unrelated numbers, so the missed
// seqs are kept per channel, in the group `<image>/channels` (Zarr group metadata of the same
// version), whose "framebroker" attribute lists, per channel: its stream, camera and properties,
// first_seq (the seq at t = 0), frames_written, frames_missed, missed_seqs ([first, count]
// ranges) and discontinuities. The image's own "missed_seqs" stays empty; its
// "sequence"."missing" lists the missing planes [t, c, 0].
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fbsave/frame_index.hpp"
#include "fbsave/writer.hpp"

namespace framebroker::fbsave {

class ChannelSet {
 public:
  // `image`: a new Zarr writer of `path` (zarr_version 2 or 3); `frames`: N, the t extent.
  ChannelSet(std::unique_ptr<Writer> image, std::string path, int zarr_version,
             std::vector<std::string> streams, uint64_t frames);
  ~ChannelSet();

  // The Writer that stream `c`'s saver feeds (begin, write, missed..., finish as the Writer
  // contract says, from that stream's writer thread).
  std::unique_ptr<Writer> channel(uint32_t c);

  // After every channel's saver ended: finishes the image and writes the channels' final
  // metadata. Returns "" or the error.
  std::string finish();

 private:
  friend class ChannelWriter;
  struct Channel {
    std::string stream;
    std::optional<DatasetInfo> info;  // set by begin()
    std::optional<uint64_t> first_seq;
    uint64_t next_t = 0, written = 0;
    MissedSeqs missed;
    std::vector<nlohmann::json> discontinuities;
  };

  void begin(uint32_t c, const DatasetInfo& info);  // under mu_
  // The "channels" group's metadata, under mu_; throws std::runtime_error.
  void write_channels(bool complete);

  std::mutex mu_;
  std::unique_ptr<Writer> image_;
  const std::string path_;
  const int zarr_version_;
  const uint64_t frames_;
  bool image_begun_ = false, finished_ = false;
  std::vector<std::unique_ptr<Channel>> channels_;
};

}  // namespace framebroker::fbsave
