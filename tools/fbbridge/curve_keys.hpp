// CURVE key files (docs/fbbridge.md, "Security"). A key file is text: comment lines start with
// '#', then `public = <Z85>` and, in a secret key file (NAME.key, mode 0600), `secret = <Z85>`.
// NAME.pub holds only the public line and is what the other side is given.
#pragma once

#include <string>

namespace framebroker::fbbridge {

struct CurveKeys {
  std::string public_key;  // 40 Z85 characters
  std::string secret_key;  // empty in a .pub file
};

// Reads a key file; need_secret: it must hold the secret key too. Throws std::runtime_error
// naming the file and what is wrong.
CurveKeys read_key_file(const std::string& path, bool need_secret);
// Writes DIR/server.key, server.pub, client.key, client.pub (fresh zmq_curve_keypair()s; the
// .key files mode 0600). Refuses to overwrite. Returns the paths written, one a line.
std::string keygen(const std::string& dir);

}  // namespace framebroker::fbbridge
