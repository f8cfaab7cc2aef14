// Two network namespaces joined by a veth pair, made with iproute2's `ip` and deleted (with the
// pair: deleting a namespace deletes the veth end in it) when the object goes, also after a
// failure half-way. fbbridge's tests and `fbbench bridge` run exporter and importer in them, so
// that frames really cross a link.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace framebroker::tools {

class VethPair {
 public:
  static constexpr const char* kIp = "/usr/sbin/ip";  // root's PATH has it; a test's may not
  // Runs argv (argv[0] is kIp); returns "" or what went wrong (its stderr).
  using Run = std::function<std::string(const std::vector<std::string>& argv)>;

  // Namespaces <tag>A and <tag>B, veth ends <tag>va (in A, addr_a/24) and <tag>vb (in B,
  // addr_b/24), every link up. Throws std::runtime_error naming the command that failed.
  VethPair(const std::string& tag, const std::string& addr_a, const std::string& addr_b, Run run)
      : a_(tag + "A"), b_(tag + "B"), va_(tag + "va"), vb_(tag + "vb"), run_(std::move(run)) {
    try {
      ip({"netns", "add", a_});
      ip({"netns", "add", b_});
      ip({"link", "add", va_, "type", "veth", "peer", "name", vb_});
      ip({"link", "set", va_, "netns", a_});
      ip({"link", "set", vb_, "netns", b_});
      ip({"-n", a_, "addr", "add", addr_a + "/24", "dev", va_});
      ip({"-n", b_, "addr", "add", addr_b + "/24", "dev", vb_});
      for (const auto& [ns, dev] : {std::pair{a_, va_}, std::pair{b_, vb_}}) {
        ip({"-n", ns, "link", "set", "lo", "up"});
        ip({"-n", ns, "link", "set", dev, "up"});
      }
    } catch (...) {
      remove();
      throw;
    }
  }
  ~VethPair() { remove(); }
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;

  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  const std::string& dev_a() const { return va_; }
  // argv run inside namespace `ns` (ip execs it: the pid is the command's).
  static std::vector<std::string> in(const std::string& ns, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {kIp, "netns", "exec", ns});
    return argv;
  }
  // Takes A's end of the link down or up (the link fails as a pulled cable would).
  void link_a(bool up) { ip({"-n", a_, "link", "set", va_, up ? "up" : "down"}); }

 private:
  void ip(std::vector<std::string> args) {
    args.insert(args.begin(), kIp);
    if (const std::string err = run_(args); !err.empty()) {
      std::string cmd;
      for (const auto& a : args) cmd += (cmd.empty() ? "" : " ") + a;
      throw std::runtime_error("`" + cmd + "` failed: " + err);
    }
  }
  void remove() {
    run_({kIp, "netns", "del", a_});
    run_({kIp, "netns", "del", b_});
  }

  std::string a_, b_, va_, vb_;
  Run run_;
};

}  // namespace framebroker::tools
