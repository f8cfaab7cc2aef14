// OME-TIFF writer: one BigTIFF page per frame, OME-XML in page 0, plus the
// framebroker metadata next to it (in a sequence: one page per plane, in acquisition order, with
// the DimensionOrder that says so, zero pages for the planes no frame came for, and the
// "sequence" entry in the summary):
//   <path>.frames.jsonl  one line per page (seq, camera frame id, timestamps),
//                        appended, flushed at checkpoint();
//   <path>.frames.json   the summary (stream, camera and its properties,
//                        expected/written/missed, missed seqs), rewritten at
//                        checkpoint() through a temp file + rename.
// (One frames.json holding every page would be rewritten whole at each
// checkpoint: O(frames) each time, 470 MB every 2 s after an hour at 1000 fps.)
//
// libtiff talks to the file through our own client procs (pread/pwrite on one
// fd), so that a failed write leaves its errno with us, and so that the OME
// SizeT in page 0's ImageDescription can be patched in place (fixed length,
// padded with blanks before </OME>) at checkpoint() and finish().
// Pages are written with TIFFWriteRawStrip (one uncompressed strip per page),
// straight from the caller's pixel span when the rows are packed.
//
// When a page is whole 4096-byte blocks and at least kDirectMinPage, its strip goes around the
// page cache like raw's frames (O_DIRECT through a second fd; this kind of VM serves the page
// cache slowly on cold memory; smaller pages would each wait for the disk, unbatched):
// the end of the file, where libtiff puts each new strip, is reported rounded up to a block, so
// every strip starts on one (a page costs at most one block more: its IFD's). The IFDs and the
// OME-XML stay on the cached fd; no block is written through both.
//
// After a failed write the file is cut back to the last complete page: the
// last good IFD's next-IFD link is reset to 0 and the file truncated, which
// also gives back the space the partial page took, for the metadata.
#include <fcntl.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "fbsave/file_io.hpp"
#include "fbsave/frame_rows.hpp"
#include "fbsave/indexed_writer.hpp"
#include "fbsave/writer.hpp"

namespace framebroker::fbsave {
namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 forbids most control characters even when escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

std::string iso8601_utc(uint64_t realtime_ns) {
  const time_t secs = time_t(realtime_ns / 1000000000ull);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                unsigned((realtime_ns % 1000000000ull) / 1000));
  return buf;
}

const char* ome_type(const DatasetInfo& i) {
  if (i.floating) return i.bytes_per_sample == 8 ? "double" : "float";
  switch (i.bytes_per_sample) {
    case 1:
      return "uint8";
    case 2:
      return "uint16";
    case 4:
      return "uint32";
    default:
      return "uint16";
  }
}

constexpr uint16_t kTagImageDescription = 270;
// A synchronous O_DIRECT write per page pays the disk's latency each time: below this the page
// cache's write-back is faster (a 128x96 Mono16 page at 500 fps fell behind under load).
constexpr size_t kDirectMinPage = 256 * 1024;

class TiffWriter final : public IndexedWriter {
 public:
  explicit TiffWriter(const std::string& path)
      : IndexedWriter("framebroker.fbsave.ome-tiff", path, path + ".frames.jsonl",
                      path + ".frames.json") {}

  ~TiffWriter() override {
    if (tif_) {
      poisoned_ = true;  // never write from a destructor
      TIFFClose(tif_);
      tif_ = nullptr;
    }
    for (int fd : {fd_, fd_direct_})
      if (fd >= 0) ::close(fd);
  }

  void begin(const DatasetInfo& info) override {
    if (info.bytes_per_sample != 1 && info.bytes_per_sample != 2 && info.bytes_per_sample != 4)
      throw std::runtime_error("cannot write " + path_ + ": unsupported sample size " +
                               std::to_string(info.bytes_per_sample));
    take_info(info);
    // Once, reused per frame; aligned, so that they too can be written with O_DIRECT.
    if (info_.stride != row_bytes_) pack_buf_ = aligned_bytes(frame_bytes_);
    if (info_.sequence) zero_page_ = aligned_bytes(frame_bytes_);

    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error(cannot_write(path_, errno));
    open_direct();
    began_ = true;
    if (const int e = index_.open(index_path_)) fail(cannot_write(index_path_, e));

    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, &TiffWriter::on_error, this);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, &TiffWriter::on_warning, this);
    // "8": BigTIFF; "m": no memory mapping; "l": little-endian.
    tif_ = TIFFClientOpenExt(path_.c_str(), "w8ml", this, &TiffWriter::read_proc,
                             &TiffWriter::write_proc, &TiffWriter::seek_proc,
                             &TiffWriter::close_proc, &TiffWriter::size_proc, &TiffWriter::map_proc,
                             &TiffWriter::unmap_proc, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif_) fail_now("cannot open for writing");
    good_size_ = size_;
    // The OME-XML is padded to the length it has with the largest SizeT.
    desc_len_ = ome_xml(std::numeric_limits<uint64_t>::max(), 0).size();
    write_summary(false);  // so that there is one from the start
  }

  void write(const FrameRecord& frame) override {
    check_usable();
    check_frame_bytes(info_, row_bytes_, frame, path_);
    if (pages_ == 0 && !has_first_time_) first_realtime_ns_ = frame.realtime_ns;
    has_first_time_ = true;
    if (info_.sequence) {
      // Pages in acquisition order: the planes skipped so far are zero pages.
      const SequenceInfo& s = *info_.sequence;
      const uint64_t page = s.place(frame.t, frame.c, frame.z);
      if (!s.holds(frame.t, frame.c, frame.z) || page < pages_) {
        unplaced_.push_back({{"seq", frame.seq},
                             {"position", frame.position},
                             {"index", {frame.t, frame.c, frame.z}}});
        return;
      }
      while (pages_ < page) write_page(nullptr);
    }
    write_page(&frame);
  }

  // The next page: `frame`'s pixels, or zeros for a plane of the sequence no frame came for.
  void write_page(const FrameRecord* frame) {
    const uint64_t page = pages_;
    // The page's index line reaches the file before the page does: on a full
    // disk either both are there or neither, so every page stays described.
    if (frame) append_index_line(*frame, page);
    try {
      set_page_tags(page);
      const void* src = zero_page_.get();
      if (frame) src = frame->pixels.data();
      if (frame && info_.stride != row_bytes_) {
        pack_rows(info_, row_bytes_, frame->pixels.data(), pack_buf_.get());
        src = pack_buf_.get();
      }
      // Uncompressed: the raw strip is the pixels; libtiff writes it without a copy.
      if (TIFFWriteRawStrip(tif_, 0, const_cast<void*>(src), tmsize_t(frame_bytes_)) !=
          tmsize_t(frame_bytes_))
        fail_now("writing page " + std::to_string(page));
      if (!TIFFWriteDirectory(tif_))
        fail_now("writing the directory of page " + std::to_string(page));
    } catch (...) {
      if (frame) index_.drop_last();
      throw;
    }
    after_page_written(page);
    if (!frame)
      ++zero_pages_;
    else if (info_.sequence)
      planes_.mark(info_.sequence->plane(frame->t, frame->c, frame->z));
    ++pages_;
    good_size_ = size_;
  }

  void append_index_line(const FrameRecord& frame, uint64_t page) {
    char line[512];
    char hw[32] = "null";
    if (frame.hw_timestamp_ns) std::snprintf(hw, sizeof hw, "%" PRIu64, *frame.hw_timestamp_ns);
    char provenance[kProvenanceMax];
    format_provenance(provenance, frame);
    char sequence[kSequenceMembersMax];
    format_sequence_members(sequence, info_, frame);
    const int n = std::snprintf(line, sizeof line,
                                "{\"page\":%" PRIu64 ",\"seq\":%" PRIu64
                                ",\"camera_frame_id\":%" PRIu64 ",\"mono_ns\":%" PRIu64
                                ",\"realtime_ns\":%" PRIu64 ",\"hw_timestamp_ns\":%s%s%s}\n",
                                page, frame.seq, frame.camera_frame_id, frame.mono_ns,
                                frame.realtime_ns, hw, provenance, sequence);
    if (const int e = index_.append(line, std::min(size_t(n), sizeof line - 1)))
      fail(cannot_write(index_path_, e));
  }

  void checkpoint() override {
    check_usable();
    if (!TIFFFlush(tif_)) fail_now("flushing");
    if (pages_ > 0) patch_size_t();
    write_summary(false);
  }

 private:
  void close_data(FinishErrors& errors) override {
    auto note = [&](const std::string& m) { errors.note(m); };
    const bool had_failed = errors.had_failed();
    if (tif_ && info_.sequence && !had_failed) {
      try {  // the planes after the last frame that came
        while (pages_ < info_.sequence->planes()) write_page(nullptr);
      } catch (const std::exception& e) {
        note(e.what());
      }
    }
    if (tif_) {
      if (!had_failed && !TIFFFlush(tif_)) note(error_message("flushing"));
      if (failed_) poisoned_ = true;  // TIFFClose must not add to a failed file
      TIFFClose(tif_);                // close_proc leaves fd_ open
      tif_ = nullptr;
      if (!poisoned_ && !tiff_error_.empty()) note(error_message("closing"));
    }
    if (fd_ >= 0) {
      if (pages_ > 0) {
        if (const int e = patch_size_t_errno()) note(cannot_write(path_, e));
      }
      if (::fdatasync(fd_) != 0) note(cannot_write(path_, errno));
      if (::close(fd_) != 0) note(cannot_write(path_, errno));
      fd_ = -1;
    }
    if (fd_direct_ >= 0) {
      ::close(fd_direct_);  // its writes were synced through fd_ (one file)
      fd_direct_ = -1;
    }
  }

  void open_direct() {
    if (frame_bytes_ < kDirectMinPage) {
      direct_note_ = "the page size (" + std::to_string(frame_bytes_) +
                     " bytes) is below 256 KiB, where the page cache is faster";
      return;
    }
    if (frame_bytes_ % kDirectAlign != 0) {
      direct_note_ =
          "the page size (" + std::to_string(frame_bytes_) + " bytes) is not a multiple of 4096";
      return;
    }
    fd_direct_ = ::open(path_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    direct_note_ =
        fd_direct_ >= 0 ? "pages written with O_DIRECT" : "the filesystem refuses O_DIRECT";
  }

  // A strip on whole blocks goes through the O_DIRECT fd: 0, the errno, or -1 (not this one).
  int write_direct(const void* buf, size_t n, uint64_t off) {
    if (fd_direct_ < 0 || off % kDirectAlign != 0 || n % kDirectAlign != 0 ||
        reinterpret_cast<uintptr_t>(buf) % kDirectAlign != 0)
      return -1;
    const int e = pwrite_all(fd_direct_, buf, n, off);
    if (e == 0) ++direct_strips_;
    if (e != EINVAL) return e;
    // Took O_DIRECT at open but not this write: the page cache from here on.
    ::close(fd_direct_);
    fd_direct_ = -1;
    direct_note_ = "the filesystem refused an O_DIRECT write (EINVAL); page cache since page " +
                   std::to_string(pages_.load());
    return -1;
  }

  // ---- libtiff client procs (thandle_t is `this`) ----
  static TiffWriter* self(thandle_t h) { return static_cast<TiffWriter*>(h); }

  static tmsize_t read_proc(thandle_t h, void* buf, tmsize_t n) {
    TiffWriter* w = self(h);
    const ssize_t r = ::pread(w->fd_, buf, size_t(n), off_t(w->pos_));
    if (r < 0) {
      w->io_errno_ = errno;
      return -1;
    }
    w->pos_ += uint64_t(r);
    return r;
  }

  static tmsize_t write_proc(thandle_t h, void* buf, tmsize_t n) {
    TiffWriter* w = self(h);
    if (w->poisoned_) return -1;
    int e = w->write_direct(buf, size_t(n), w->pos_);
    if (e < 0) e = pwrite_all(w->fd_, buf, size_t(n), w->pos_);
    if (e) {
      w->io_errno_ = e;
      // What did get written still counts towards the size (truncated later).
      struct stat st {};
      if (::fstat(w->fd_, &st) == 0) w->size_ = std::max<uint64_t>(w->size_, uint64_t(st.st_size));
      return -1;
    }
    w->pos_ += uint64_t(n);
    w->size_ = std::max(w->size_, w->pos_);
    return n;
  }

  static toff_t seek_proc(thandle_t h, toff_t off, int whence) {
    TiffWriter* w = self(h);
    switch (whence) {
      case SEEK_SET:
        w->pos_ = off;
        break;
      case SEEK_CUR:
        w->pos_ += off;
        break;
      case SEEK_END:  // where libtiff puts a new strip or IFD: on a block for O_DIRECT
        w->pos_ = (w->fd_direct_ >= 0 ? round_up_direct(w->size_) : w->size_) + off;
        break;
      default:
        return toff_t(-1);
    }
    return w->pos_;
  }

  static int close_proc(thandle_t) { return 0; }  // fd_ is closed by finish()
  static toff_t size_proc(thandle_t h) { return self(h)->size_; }
  static int map_proc(thandle_t, void**, toff_t*) { return 0; }
  static void unmap_proc(thandle_t, void*, toff_t) {}

  static int on_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    TiffWriter* w = static_cast<TiffWriter*>(user);
    if (w->poisoned_) return 1;  // expected noise while closing a failed file
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    if (w->tiff_error_.empty()) {
      w->tiff_error_ = (module && *module) ? std::string(module) + ": " + buf : std::string(buf);
    }
    return 1;
  }
  static int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

  // ---- OME-XML ----
  // The OME-XML with SizeT = n, padded with blanks before </OME> to pad_to bytes.
  std::string ome_xml(uint64_t n, size_t pad_to) const {
    const std::string N = std::to_string(n);
    std::string x;
    x.reserve(pad_to + 1024);
    x += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    x += "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" "
         "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
         "xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 "
         "http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\" "
         "Creator=\"framebroker fbsave\">";
    x += "<Image ID=\"Image:0\" Name=\"" + xml_escape(info_.stream) + "\">";
    x += "<AcquisitionDate>" + iso8601_utc(first_realtime_ns_) + "</AcquisitionDate>";
    if (info_.sequence) {
      sequence_pixels(x);
    } else {
      x += "<Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"";
      x += ome_type(info_);
      x += "\" SizeX=\"" + std::to_string(info_.width) + "\" SizeY=\"" +
           std::to_string(info_.height) + "\" SizeC=\"" + std::to_string(info_.samples) +
           "\" SizeZ=\"1\" SizeT=\"" + N + "\" BigEndian=\"false\" Interleaved=\"" +
           (info_.samples > 1 ? "true" : "false") + "\">";
      x +=
          "<Channel ID=\"Channel:0:0\" SamplesPerPixel=\"" + std::to_string(info_.samples) + "\"/>";
      x += "<TiffData IFD=\"0\" PlaneCount=\"" + N + "\"/>";
    }
    x += "</Pixels><AnnotationRef ID=\"Annotation:0\"/></Image>";
    x += "<StructuredAnnotations><MapAnnotation ID=\"Annotation:0\" "
         "Namespace=\"framebroker.fbsave\"><Value>";
    auto m = [&](const std::string& k, const std::string& v) {
      x += "<M K=\"" + xml_escape(k) + "\">" + xml_escape(v) + "</M>";
    };
    m("stream", info_.stream);
    m("camera", info_.camera);
    m("pixel_type", info_.pixel_type);
    m("frames_summary", std::filesystem::path(summary_path_).filename().string());
    m("frames_index", std::filesystem::path(index_path_).filename().string());
    if (info_.sequence) {
      m("sequence.id", std::to_string(info_.sequence->id));
      m("sequence.axes", info_.sequence->axes);
      m("sequence.order", info_.sequence->order);
      m("sequence.missing", "listed in " +
                                std::filesystem::path(summary_path_).filename().string() +
                                " (sequence.missing); their pages are zeros");
    }
    for (const auto& [k, v] : info_.camera_properties) m("camera." + k, v);
    x += "</Value></MapAnnotation></StructuredAnnotations>";
    if (x.size() + 6 < pad_to) x.append(pad_to - 6 - x.size(), ' ');
    x += "</OME>";
    return x;
  }

  // A sequence's Pixels: its sizes from the start, DimensionOrder from its acquisition order (so
  // that the pages, written in that order, are in DimensionOrder), one Channel per channel.
  void sequence_pixels(std::string& x) const {
    const SequenceInfo& s = *info_.sequence;
    std::string order = "XY";
    for (const char a : std::string("ZCT"))  // axes the sequence lacks (size 1), innermost
      if (s.order.find(char(a + 32)) == std::string::npos) order += a;
    for (size_t i = s.order.size(); i-- > 0;)
      if (s.order[i] != 'p') order += char(s.order[i] - 32);
    const std::string planes = std::to_string(s.planes());
    x += "<Pixels ID=\"Pixels:0\" DimensionOrder=\"" + order + "\" Type=\"";
    x += ome_type(info_);
    x += "\" SizeX=\"" + std::to_string(info_.width) + "\" SizeY=\"" +
         std::to_string(info_.height) + "\" SizeZ=\"" + std::to_string(s.z) + "\" SizeC=\"" +
         std::to_string(s.c) + "\" SizeT=\"" + std::to_string(s.t) + "\"";
    if (s.z_step_um > 0)
      x += " PhysicalSizeZ=\"" + std::to_string(s.z_step_um) + "\" PhysicalSizeZUnit=\"µm\"";
    if (s.interval_ms > 0)
      x += " TimeIncrement=\"" + std::to_string(s.interval_ms) + "\" TimeIncrementUnit=\"ms\"";
    x += " BigEndian=\"false\" Interleaved=\"false\">";
    for (uint32_t c = 0; c < s.c; ++c) {
      x += "<Channel ID=\"Channel:0:" + std::to_string(c) + "\" SamplesPerPixel=\"1\"";
      if (c < s.channels.size()) x += " Name=\"" + xml_escape(s.channels[c]) + "\"";
      x += "/>";
    }
    x += "<TiffData IFD=\"0\" PlaneCount=\"" + planes + "\"/>";
  }

  void set_page_tags(uint64_t page) {
    const uint16_t spp = uint16_t(info_.samples);
    bool ok = TIFFSetField(tif_, TIFFTAG_IMAGEWIDTH, uint32_t(info_.width)) &&
              TIFFSetField(tif_, TIFFTAG_IMAGELENGTH, uint32_t(info_.height)) &&
              TIFFSetField(tif_, TIFFTAG_BITSPERSAMPLE, uint16_t(8 * info_.bytes_per_sample)) &&
              TIFFSetField(tif_, TIFFTAG_SAMPLESPERPIXEL, spp) &&
              TIFFSetField(tif_, TIFFTAG_SAMPLEFORMAT,
                           uint16_t(info_.floating ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT)) &&
              TIFFSetField(tif_, TIFFTAG_PHOTOMETRIC,
                           uint16_t(spp == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK)) &&
              TIFFSetField(tif_, TIFFTAG_PLANARCONFIG, uint16_t(PLANARCONFIG_CONTIG)) &&
              TIFFSetField(tif_, TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_NONE)) &&
              TIFFSetField(tif_, TIFFTAG_ROWSPERSTRIP, uint32_t(info_.height));
    if (ok && spp != 1 && spp != 3) {
      // e.g. BGRA8: keep the samples as they are, the extra ones unspecified.
      std::vector<uint16_t> extra(spp - 1, EXTRASAMPLE_UNSPECIFIED);
      ok = TIFFSetField(tif_, TIFFTAG_EXTRASAMPLES, uint16_t(extra.size()), extra.data());
    }
    if (ok && page == 0) {
      const std::string desc = ome_xml(0, desc_len_);
      ok = TIFFSetField(tif_, TIFFTAG_IMAGEDESCRIPTION, desc.c_str()) &&
           TIFFSetField(tif_, TIFFTAG_SOFTWARE, "framebroker fbsave");
    }
    if (!ok) fail_now("setting the tags of page " + std::to_string(page));
  }

  // Follows the IFD chain one step: finds the page just written and where its
  // next-IFD link lives, and for page 0 where the ImageDescription bytes are.
  void after_page_written(uint64_t page) {
    uint64_t ifd = 0, nent = 0;
    int e = pread_all(fd_, &ifd, 8, link_pos_);
    if (!e) e = pread_all(fd_, &nent, 8, ifd);
    if (!e && (ifd == 0 || nent == 0 || nent > 4096)) e = EIO;
    if (!e && page == 0) {
      std::vector<unsigned char> ents(size_t(nent) * 20);
      e = pread_all(fd_, ents.data(), ents.size(), ifd + 8);
      for (size_t i = 0; !e && i < nent; ++i) {
        const unsigned char* p = ents.data() + i * 20;
        uint16_t tag;
        uint64_t count, value;
        std::memcpy(&tag, p, 2);
        std::memcpy(&count, p + 4, 8);
        std::memcpy(&value, p + 12, 8);
        if (tag == kTagImageDescription) {
          desc_off_ = value;
          desc_count_ = count;
        }
      }
      if (!e && desc_count_ != desc_len_ + 1) e = EIO;  // length + NUL
    }
    if (e) {
      io_errno_ = e;
      fail_now("reading back the directory of page " + std::to_string(page));
    }
    link_pos_ = ifd + 8 + nent * 20;
  }

  int patch_size_t_errno() {
    if (desc_off_ == 0) return 0;
    const std::string desc = ome_xml(pages_, desc_len_);
    return pwrite_all(fd_, desc.data(), desc.size(), desc_off_);
  }
  void patch_size_t() {
    if (const int e = patch_size_t_errno()) {
      io_errno_ = e;
      fail_now("updating the OME-XML");
    }
  }

  // ---- frames.jsonl and frames.json ----
  uint64_t frames_written() const override { return pages_ - zero_pages_; }

  void add_summary_fields(nlohmann::json& h) const override {
    if (info_.sequence) {
      h["pages"] = pages_.load();
      h["zero_pages"] = zero_pages_.load();
      h["unplaced"] = unplaced_;  // frames whose plane was already written: [{seq, index}]
    }
    h["tiff"] = std::filesystem::path(path_).filename().string();
    h["o_direct"] = direct_note_ == "pages written with O_DIRECT";
    h["o_direct_note"] = direct_note_;
    h["o_direct_pages"] = direct_strips_;  // of pages_ (zero pages included)
    h["frames_index"] = std::filesystem::path(index_path_).filename().string();
  }

  // ---- errors ----
  std::string error_message(const std::string& what) {
    std::string m = "cannot write " + path_ + ": ";
    if (io_errno_) {
      m += errno_text(io_errno_);
    } else if (!tiff_error_.empty()) {
      m += tiff_error_;
    } else {
      m += what + " failed";
    }
    io_errno_ = 0;
    tiff_error_.clear();
    return m;
  }

  // Records the failure, cuts the file back to the last complete page, throws.
  [[noreturn]] void fail_now(const std::string& what) {
    const std::string message = error_message(what);
    poisoned_ = true;  // libtiff writes nothing more to this file
    if (fd_ >= 0 && size_ > good_size_) {
      if (pages_ > 0) {
        const uint64_t zero = 0;  // unlink a half-written IFD, if it got linked
        pwrite_all(fd_, &zero, 8, link_pos_);
      }
      if (::ftruncate(fd_, off_t(good_size_)) == 0) size_ = good_size_;
    }
    fail(message);
  }

  AlignedBytes pack_buf_;
  // Read by totals() from other threads (the saver's progress line).
  std::atomic<uint64_t> pages_{0};       // complete pages in the file
  std::atomic<uint64_t> zero_pages_{0};  // of which planes of a sequence no frame came for
  uint64_t first_realtime_ns_ = 0;
  bool has_first_time_ = false;
  AlignedBytes zero_page_;  // in a sequence: one zeroed page, reused
  nlohmann::json unplaced_ = nlohmann::json::array();

  int fd_ = -1;
  int fd_direct_ = -1;  // the same file, O_DIRECT: for strips on whole blocks
  std::string direct_note_;
  uint64_t direct_strips_ = 0;  // strips that went through fd_direct_
  TIFF* tif_ = nullptr;
  uint64_t pos_ = 0, size_ = 0, good_size_ = 0;
  uint64_t link_pos_ = 8;  // the last complete page's next-IFD link (before any: the header's)
  size_t desc_len_ = 0;    // fixed OME-XML length, without the NUL
  uint64_t desc_off_ = 0, desc_count_ = 0;

  bool poisoned_ = false;
  int io_errno_ = 0;
  std::string tiff_error_;
};

}  // namespace

std::unique_ptr<Writer> make_tiff_writer(const std::string& path) {
  return std::make_unique<TiffWriter>(path);
}

}  // namespace framebroker::fbsave
