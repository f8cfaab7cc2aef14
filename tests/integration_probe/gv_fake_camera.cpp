// fb_test_gv_camera: a fake GigE Vision camera on the loopback interface, for the aravis driver's
// integration tests (Aravis' in-process ArvGvFakeCamera; Debian does not package the
// arv-fake-gv-camera program).
//
//   fb_test_gv_camera --serial S [--lost-ratio R] [--width W --height H]
//
// Serves GVCP on 127.0.0.1:3956 and streams GVSP to whoever takes control of it, until SIGTERM or
// SIGINT. Prints `ready 127.0.0.1 <device id>` on stdout once it serves. Open it by the address:
// it answers broadcast discovery on every interface, and when Aravis finds it through another
// one (eth0) it streams to that interface's address and listens there, and no frame arrives.
//
// Every frame is Mono8 and UNIFORM: all its bytes are the low byte of its GVSP frame id, so a
// consumer tells a torn frame (mixed values) or a stale slot (a value of another frame id) from
// a good one. --lost-ratio drops that fraction of the stream packets (leader, payload, trailer)
// at random; the fake camera answers no packet resend, so a frame that lost one never completes.
//
// Only one fake camera can own 127.0.0.1:3956: helpers started side by side (ctest -j) wait for
// each other on a lock file; a port held by something else is an error (exit 3).
#include <arpa/inet.h>
#include <arv.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr int kGvcpPort = 3956;
constexpr const char* kLockPath = "/tmp/fb_test_gv_camera.3956.lock";

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) {
  g_stop = 1;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "fb_test_gv_camera: %s\n"
               "usage: fb_test_gv_camera --serial S [--lost-ratio R] [--width W --height H]\n",
               why);
  std::exit(2);
}

// Every pixel of a frame: the low byte of its frame id (the id the GVSP packets carry).
// The callback gets the fake camera's own image buffer with width, height, pixel format and
// frame id already set, but a size of 0 (arv_buffer_get_data reports what was "received"), so
// the size comes from the image and is kept within the payload the camera checked the buffer
// against.
void fill_uniform(ArvBuffer* buffer, void* camera, guint32, guint32, ArvPixelFormat format) {
  if (!buffer) return;
  void* data = const_cast<void*>(arv_buffer_get_data(buffer, nullptr));
  if (!data) return;
  const size_t bits = ARV_PIXEL_FORMAT_BIT_PER_PIXEL(format);
  size_t size = size_t(arv_buffer_get_image_width(buffer)) *
                size_t(arv_buffer_get_image_height(buffer)) * (bits ? bits : 8) / 8;
  size = std::min(size, arv_fake_camera_get_payload(static_cast<ArvFakeCamera*>(camera)));
  std::memset(data, int(arv_buffer_get_frame_id(buffer) & 0xFF), size);
}

// True when nothing holds 127.0.0.1:3956 (the fake camera does not report a failed bind).
bool gvcp_port_free() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(kGvcpPort);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string serial;
  double lost_ratio = 0;
  long width = 0, height = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--serial") {
      serial = value();
    } else if (a == "--lost-ratio") {
      lost_ratio = std::strtod(value().c_str(), nullptr);
    } else if (a == "--width") {
      width = std::strtol(value().c_str(), nullptr, 10);
    } else if (a == "--height") {
      height = std::strtol(value().c_str(), nullptr, 10);
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (serial.empty()) usage("--serial is required");
  if (lost_ratio < 0 || lost_ratio > 1) usage("--lost-ratio is a fraction, 0 to 1");
  if (width < 0 || height < 0 || width > 2048 || height > 2048)
    usage("--width and --height are 1 to 2048");

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  // One fake camera at a time on the port; the lock goes with the process, however it ends.
  const int lock = ::open(kLockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (lock < 0) {
    std::fprintf(stderr, "fb_test_gv_camera: %s: %s\n", kLockPath, std::strerror(errno));
    return 3;
  }
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {};
    [[maybe_unused]] auto n = ::pread(lock, holder, sizeof holder - 1, 0);
    std::fprintf(stderr, "fb_test_gv_camera: waiting for the fake camera of pid %s to exit\n",
                 holder[0] ? holder : "?");
    while (::flock(lock, LOCK_EX) != 0) {
      if (errno != EINTR || g_stop) return 0;
    }
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock, 0) != 0 || ::pwrite(lock, me.data(), me.size(), 0) < 0) {
    // the pid is only for the message above
  }
  // A helper that just exited may leave the port for a moment.
  for (int i = 0; !gvcp_port_free(); ++i) {
    if (g_stop) return 0;
    if (i == 50) {
      std::fprintf(stderr, "fb_test_gv_camera: 127.0.0.1:%d is in use by another program\n",
                   kGvcpPort);
      return 3;
    }
    ::usleep(100'000);
  }

  ArvGvFakeCamera* gv = arv_gv_fake_camera_new("127.0.0.1", serial.c_str());
  if (!gv || !arv_gv_fake_camera_is_running(gv)) {
    std::fprintf(stderr, "fb_test_gv_camera: cannot serve a fake GigE Vision camera on lo\n");
    return 3;
  }
  g_object_set(gv, "gvsp-lost-ratio", lost_ratio, nullptr);
  ArvFakeCamera* fake = arv_gv_fake_camera_get_fake_camera(gv);
  if (width > 0)
    arv_fake_camera_write_register(fake, ARV_FAKE_CAMERA_REGISTER_WIDTH, guint32(width));
  if (height > 0)
    arv_fake_camera_write_register(fake, ARV_FAKE_CAMERA_REGISTER_HEIGHT, guint32(height));
  arv_fake_camera_set_fill_pattern(fake, fill_uniform, fake);

  if (gvcp_port_free()) {  // the fake camera failed to bind it after all
    std::fprintf(stderr, "fb_test_gv_camera: the fake camera did not bind 127.0.0.1:%d\n",
                 kGvcpPort);
    g_object_unref(gv);
    return 3;
  }

  // Aravis' own id for it: <vendor>-<model>-<serial>, as discovery reports it.
  std::printf("ready 127.0.0.1 Aravis-Fake-%s\n", serial.c_str());
  std::fflush(stdout);

  while (!g_stop) ::usleep(50'000);
  g_object_unref(gv);  // stops the camera's thread, closes its sockets
  return 0;
}
