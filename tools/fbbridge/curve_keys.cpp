#include "fbbridge/curve_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace framebroker::fbbridge {

namespace {

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return {};
  const auto b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

void check_z85(const std::string& path, const char* what, const std::string& key) {
  uint8_t bin[32];
  if (key.size() != 40 || !zmq_z85_decode(bin, key.c_str()))
    throw std::runtime_error("key file " + path + ": the " + what +
                             " key is not 40 Z85 characters");
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno) +
                             (errno == EEXIST ? " (keygen does not overwrite keys)" : ""));
  const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace

CurveKeys read_key_file(const std::string& path, bool need_secret) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read key file " + path + ": " + std::strerror(errno));
  CurveKeys k;
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos)
      throw std::runtime_error("key file " + path + ": a line that is not `name = value`");
    const auto name = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (name == "public")
      k.public_key = value;
    else if (name == "secret")
      k.secret_key = value;
    else
      throw std::runtime_error("key file " + path + ": unknown entry '" + name + "'");
  }
  if (k.public_key.empty()) throw std::runtime_error("key file " + path + " has no public key");
  check_z85(path, "public", k.public_key);
  if (need_secret) {
    if (k.secret_key.empty())
      throw std::runtime_error("key file " + path +
                               " has no secret key (give the .key file, not the .pub)");
    check_z85(path, "secret", k.secret_key);
  }
  return k;
}

std::string keygen(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + dir + ": " + std::strerror(errno));
  std::string written;
  for (const char* who : {"server", "client"}) {
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0)
      throw std::runtime_error(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()) +
                               " (is libzmq built with CURVE?)");
    const std::string head = std::string("# fbbridge CURVE key of the ") + who +
                             " (zmq_curve_keypair, Z85); see fbbridge(1)\n";
    const std::string base = dir + "/" + who;
    write_file(base + ".key", head + "public = " + pub + "\nsecret = " + sec + "\n", 0600);
    write_file(base + ".pub", head + "public = " + pub + "\n", 0644);
    written += base + ".key\n" + base + ".pub\n";
  }
  return written;
}

}  // namespace framebroker::fbbridge
