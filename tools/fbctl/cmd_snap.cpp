// fbctl snap CAM -o FILE: one frame to a TIFF, while the camera streams (the
// next frame) or while it is idle (the broker snaps one).
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/single_image_tiff.hpp"
#include "fbctl/context.hpp"

namespace framebroker::fbctl {

namespace {

tools::ImageView image_of(const Frame& f) {
  tools::ImageView img{f.pixels(), f.width(), f.height(), f.stride()};
  switch (f.pixel_type()) {
    case PixelType::Mono8:
      img.bits_per_sample = 8;
      break;
    case PixelType::RGB8:
      img.bits_per_sample = 8, img.samples = 3;
      break;
    case PixelType::RGB16:
      img.samples = 3;
      break;
    case PixelType::Mono32F:
      img.bits_per_sample = 32, img.floating = true;
      break;
    case PixelType::BGRA8:
      throw Error(Errc::InvalidArgument, "snap cannot write BGRA8 frames yet");
    default:
      break;  // Mono10/12/14/16: 16-bit
  }
  return img;
}

bool camera_running(Client& client, const std::string& camera) {
  for (const auto& c : client.status().cameras)
    if (c.name == camera) return c.running;
  return false;  // the snap request below names the cameras there are
}

}  // namespace

void add_snap_command(CLI::App& app, Context& ctx) {
  static std::string camera, output;
  static double timeout_s = 5;
  auto* cmd = add_command(
      app, ctx, "snap",
      "save one frame as a TIFF (16-bit for Mono10..16, 8-bit for Mono8); takes the next frame\n"
      "of a running camera, or snaps one from an idle camera\n  e.g. fbctl snap sim0 -o frame.tif",
      true, [](Context& c) {
        auto client = c.connect();
        auto sub = client.subscribe(camera, {.mode = Mode::Latest});
        if (!camera_running(client, camera)) {
          auto cam = client.camera(camera);
          cam.snap();
        }
        auto frame = sub.next(std::chrono::milliseconds(int64_t(timeout_s * 1000)));
        if (!frame)
          throw Error(Errc::Timeout,
                      "no frame from " + camera + " within " + std::to_string(timeout_s) + " s");
        const std::string desc = "framebroker snap: stream " + camera + " seq " +
                                 std::to_string(frame->seq()) + " camera frame " +
                                 std::to_string(frame->camera_frame_id());
        tools::write_tiff(output, image_of(*frame), desc);
        if (c.json)
          std::cout << nlohmann::json{{"camera", camera},
                                      {"file", output},
                                      {"seq", frame->seq()},
                                      {"camera_frame_id", frame->camera_frame_id()},
                                      {"width", frame->width()},
                                      {"height", frame->height()},
                                      {"pixel_type", to_string(frame->pixel_type())}}
                           .dump()
                    << "\n";
        else
          std::cout << "wrote " << output << ": " << frame->width() << "x" << frame->height() << " "
                    << to_string(frame->pixel_type()) << ", seq " << frame->seq() << "\n";
        return int(kOk);
      });
  cmd->add_option("camera", camera, "camera name")->required();
  cmd->add_option("-o,--output", output, "TIFF file to write")->required();
  cmd->add_option("--timeout", timeout_s, "seconds to wait for the frame")->capture_default_str();
}

}  // namespace framebroker::fbctl
