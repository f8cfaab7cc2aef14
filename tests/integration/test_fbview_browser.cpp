// fbview's page in a real headless Chromium, against a real broker and a real fbview.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include "cdp.hpp"
#include "fbview_client.hpp"
#include "harness.hpp"

using namespace fbtest;
using nlohmann::json;
namespace http = boost::beast::http;

namespace {

// The seq the overlay shows ("... seq 1234 ..."), or -1.
int64_t overlay_seq(cdp::Page& page) {
  const std::string text = page.evaluate("document.getElementById('overlay').textContent");
  std::smatch m;
  static const std::regex seq(R"(seq\s+(\d+))");
  return std::regex_search(text, m, seq) ? std::stoll(m[1]) : -1;
}

// Statistics of what the canvas shows: size, darkest and brightest grey, lit pixels.
json canvas_stats(cdp::Page& page) {
  return page.evaluate(R"JS((() => {
    const c = document.getElementById('view');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lo = 255, hi = 0, lit = 0, sum = 0, tinted = 0;
    for (let i = 0; i < d.length; i += 4) {
      const v = d[i + 1];
      lo = Math.min(lo, v); hi = Math.max(hi, v); if (v > 16) lit++;
      sum += v; if (d[i] !== v) tinted++;
    }
    return {width: c.width, height: c.height, lo, hi, lit, sum, tinted};
  })())JS");
}

bool is_png(const std::string& bytes) {
  return bytes.size() > 1000 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

// A web site other than fbview: one page on 127.0.0.1 at another port, served from a thread.
class OtherSite {
 public:
  explicit OtherSite(std::string html)
      : html_(std::move(html)),
        acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        thread_([this] {
          accept();
          io_.run();
        }) {}
  ~OtherSite() {
    io_.stop();
    thread_.join();
  }
  std::string origin() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }

 private:
  struct Exchange {
    explicit Exchange(boost::asio::ip::tcp::socket s) : stream(std::move(s)) {}
    boost::beast::tcp_stream stream;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };

  void accept() {
    acceptor_.async_accept([this](boost::beast::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      auto x = std::make_shared<Exchange>(std::move(s));
      http::async_read(
          x->stream, x->buffer, x->req, [this, x](boost::beast::error_code ec, size_t) {
            if (ec) return;
            const bool page = x->req.target() == "/" || x->req.target().starts_with("/?");
            x->res = {page ? http::status::ok : http::status::not_found, x->req.version()};
            x->res.set(http::field::content_type, "text/html");
            x->res.body() = page ? html_ : "";
            x->res.keep_alive(false);
            x->res.prepare_payload();
            http::async_write(x->stream, x->res, [x](boost::beast::error_code, size_t) {
              boost::beast::error_code ignored;
              x->stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
            });
          });
      accept();
    });
  }

  std::string html_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
};

// A page that, as any page may, tries to watch the camera of the fbview at ?port=N (or `port`)
// and writes what happened into #result: "refused", or "streaming" once a frame came.
std::string watching_page(uint16_t port = 0) {
  return R"(<!doctype html><title>elsewhere</title><p id="result">trying</p><script>
const out = document.getElementById('result');
const port = new URLSearchParams(location.search).get('port') || )" +
         std::to_string(port) + R"(;
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?stream=cam`);
ws.binaryType = 'arraybuffer';
ws.onopen = () => ws.send(JSON.stringify({type: 'ready', max_width: 64, max_height: 64}));
ws.onmessage = e => { if (typeof e.data !== 'string') out.textContent = 'streaming'; };
ws.onclose = () => { if (out.textContent === 'trying') out.textContent = 'refused'; };
</script>)";
}

std::string result_of(cdp::Page& page) {
  return page.wait_for("(t => t !== 'trying' && t)(document.getElementById('result').textContent)",
                       20s);
}

}  // namespace

TEST(FbviewBrowser, ThePageShowsLiveFramesWhileAnEverySubscriberMissesNothing) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  Broker broker({"--no-default-camera", "--camera",
                 "sim:name=cam,Width=512,Height=512,FrameRate=200,Pattern=counter",  // 1 s ring
                 "--camera", "sim:name=spots,Width=640,Height=480,FrameRate=50,Pattern=spots"});
  Viewer viewer(broker);
  cdp::Browser browser(1280, 800);
  cdp::Page page = browser.open(viewer.url() + "?stream=cam");
  page.wait_for("window.fbview && window.fbview.framesDrawn > 5", 30s);

  // A saver-like subscriber of the same stream at 200 fps while the page runs flat out.
  auto saver =
      broker.fbctl_async({"watch", "cam", "--frames", "1000", "--verify-counter", "--json"});
  const int64_t drawn_before = page.evaluate("window.fbview.framesDrawn");
  const std::string first = page.screenshot_png();
  const int64_t seq1 = overlay_seq(page);
  const json stats1 = canvas_stats(page);
  std::this_thread::sleep_for(1500ms);
  const std::string second = page.screenshot_png();
  const int64_t seq2 = overlay_seq(page);
  const json stats2 = canvas_stats(page);
  const int64_t drawn_after = page.evaluate("window.fbview.framesDrawn");

  EXPECT_TRUE(is_png(first) && is_png(second));
  EXPECT_NE(first, second) << "the picture did not change";
  EXPECT_GE(seq1, 0) << page.evaluate("document.getElementById('overlay').textContent");
  EXPECT_GT(seq2, seq1) << "the overlay's seq did not rise";
  for (const json& s : {stats1, stats2}) {  // min-max contrast over a counter ramp
    EXPECT_GT(s["width"].get<int>(), 100) << s;
    EXPECT_GT(s["hi"].get<int>() - s["lo"].get<int>(), 200) << s;
    EXPECT_GT(s["lit"].get<int>(), 10000) << s;
  }
  EXPECT_GT(drawn_after - drawn_before, 10) << "the page drew few frames in 1.5 s";

  expect_lossless(watch_summary(*saver), 1000);
  EXPECT_EQ(stream_of(broker.status(), "cam")["dropped"], 0);

  // The stream picker switches the page to another stream.
  page.evaluate(
      "(() => { const s = document.getElementById('stream'); s.value = 'spots';"
      " s.dispatchEvent(new Event('change')); })()");
  page.wait_for(
      "window.fbview.lastHeader && window.fbview.lastHeader.stream === 'spots' &&"
      " window.fbview.framesDrawn > 3",
      30s);
  EXPECT_EQ(page.evaluate("window.fbview.lastHeader.source_width"), 640);
  EXPECT_TRUE(page.console_errors().empty()) << page.console_errors().front();
  if (const char* path = std::getenv("FBVIEW_SCREENSHOT")) {  // the README's picture
    std::this_thread::sleep_for(1s);
    std::ofstream(path, std::ios::binary) << page.screenshot_png();
  }
}

TEST(FbviewBrowser, ThePageSaysTheBrokerIsGoneAndComesBackWithIt) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  const std::vector<std::string> camera = {"--no-default-camera", "--camera",
                                           "sim:name=cam,FrameRate=100,Pattern=spots"};
  Broker broker(camera);
  Viewer viewer(broker);
  cdp::Browser browser(1024, 700);
  cdp::Page page = browser.open(viewer.url() + "?stream=cam");
  page.wait_for("window.fbview && window.fbview.framesDrawn > 2", 30s);
  broker.process().signal(SIGTERM);
  ASSERT_TRUE(broker.process().wait(10s));
  page.wait_for("window.fbview.broker === 'lost'", 20s);
  EXPECT_NE(page.evaluate("document.body.innerText").get<std::string>().find("broker gone"),
            std::string::npos);
  const int64_t drawn = page.evaluate("window.fbview.framesDrawn");
  broker.start(camera);
  page.wait_for("window.fbview.broker === 'connected' && window.fbview.framesDrawn > " +
                    std::to_string(drawn + 2),
                30s);
}

TEST(FbviewBrowser, WithTheCameraStoppedLevelsGammaAndLutStillChangeThePicture) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  Broker broker({"--no-default-camera", "--camera", "sim:name=cam,FrameRate=50,Pattern=spots"});
  Viewer viewer(broker);
  cdp::Browser browser(1024, 700);
  cdp::Page page = browser.open(viewer.url() + "?stream=cam");
  page.wait_for("window.fbview && window.fbview.framesDrawn > 2", 30s);
  ASSERT_EQ(broker.fbctl({"stop", "cam"}).exit_code, 0);
  int64_t drawn = page.evaluate("window.fbview.framesDrawn");
  for (int settled = 0; settled < 10; ++settled) {
    std::this_thread::sleep_for(700ms);
    const int64_t now = page.evaluate("window.fbview.framesDrawn");
    if (now == drawn) break;
    drawn = now;
  }
  const json seq = page.evaluate("window.fbview.lastSeq");
  const json before = canvas_stats(page);

  page.evaluate(
      "(() => { const g = document.getElementById('gamma'); g.value = Math.log10(3);"
      " g.dispatchEvent(new Event('input')); })()");
  page.wait_for("window.fbview.lastHeader.gamma === 3", 10s);
  EXPECT_EQ(page.evaluate("window.fbview.lastSeq"), seq) << "the same frame";
  EXPECT_EQ(page.evaluate("window.fbview.lastHeader.restyled"), true);
  const json darker = canvas_stats(page);
  EXPECT_LT(darker["sum"].get<double>(), before["sum"].get<double>()) << before << darker;

  // The page applies the LUT itself, to the frame it holds.
  const auto set_lut = [&](const std::string& name) {
    page.evaluate("(() => { const l = document.getElementById('lut'); l.value = '" + name +
                  "'; l.dispatchEvent(new Event('change')); })()");
  };
  EXPECT_EQ(darker["tinted"], 0) << "the grey LUT";
  set_lut("fire");
  EXPECT_GT(canvas_stats(page)["tinted"].get<int>(), 1000) << canvas_stats(page);
  set_lut("grey");

  page.evaluate(
      "(() => { const a = document.getElementById('auto'); a.value = 'off';"
      " a.dispatchEvent(new Event('change'));"
      " const b = document.getElementById('black'); b.value = 0;"
      " b.dispatchEvent(new Event('change'));"
      " const w = document.getElementById('white'); w.value = 100;"
      " w.dispatchEvent(new Event('change')); })()");
  page.wait_for("window.fbview.lastHeader.white === 100 && window.fbview.lastHeader.black === 0",
                10s);
  EXPECT_GT(canvas_stats(page)["lit"].get<int>(), darker["lit"].get<int>())
      << "a low white level brightens";
  EXPECT_EQ(page.evaluate("window.fbview.lastSeq"), seq) << "still the frame of before the stop";

  EXPECT_TRUE(page.console_errors().empty()) << page.console_errors().front();
}

// Any page open in the user's browser can try ws://127.0.0.1:PORT; fbview must refuse it.
TEST(FbviewBrowser, APageOfAnotherOriginCannotWatchTheCamera) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  Broker broker({"--no-default-camera", "--camera", "sim:name=cam,FrameRate=50,Pattern=spots"});
  Viewer viewer(broker);
  OtherSite site(watching_page());
  cdp::Browser browser(800, 600);
  cdp::Page page = browser.open(site.origin() + "/?port=" + std::to_string(viewer.port()));
  EXPECT_EQ(result_of(page), "refused");
  EXPECT_NE(viewer.process().err().find("refused a WebSocket from a page of origin '" +
                                        site.origin() + "'"),
            std::string::npos)
      << viewer.process().err();
  // fbview's own page, in the same browser, still streams.
  cdp::Page own = browser.open(viewer.url() + "?stream=cam");
  own.wait_for("window.fbview && window.fbview.framesDrawn > 2", 30s);
}

TEST(FbviewBrowser, AllowOriginLetsThatSitesPageWatch) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  Broker broker({"--no-default-camera", "--camera", "sim:name=cam,FrameRate=50,Pattern=spots"});
  OtherSite site(watching_page());
  Viewer viewer(broker, {"--allow-origin", site.origin()});
  cdp::Browser browser(800, 600);
  cdp::Page page = browser.open(site.origin() + "/?port=" + std::to_string(viewer.port()));
  EXPECT_EQ(result_of(page), "streaming");
}

TEST(FbviewBrowser, ThePageShowsTheIndexAndChannelAndCanShowOneChannelOnly) {
  if (!cdp::Browser::find_chromium()) GTEST_SKIP() << "chromium is not installed";
  Broker broker({"--no-default-camera", "--camera",
                 "sim:name=cam,Width=128,Height=64,FrameRate=100,Pattern=counter,slots=16,"
                 "start=false"});
  Viewer viewer(broker);
  ASSERT_EQ(
      broker.fbctl({"start", "cam", "--axes", "t=1000,c=2,z=2", "--channels", "488,561"}).exit_code,
      0);
  cdp::Browser browser(1024, 700);
  cdp::Page page = browser.open(viewer.url() + "?stream=cam&channel=561");
  page.wait_for("window.fbview && window.fbview.framesDrawn > 10", 30s);
  const std::string overlay = page.evaluate("document.getElementById('overlay').textContent");
  EXPECT_NE(overlay.find("channel 561  (only this channel)"), std::string::npos) << overlay;
  EXPECT_TRUE(
      std::regex_search(overlay, std::regex(R"(sequence 1  t=\d+ c=1 z=[01]  of t=1000,c=2,z=2)")))
      << overlay;
  EXPECT_EQ(page.evaluate("Object.keys(window.fbview.channelsDrawn).join()"), "561");
  EXPECT_EQ(page.evaluate("document.getElementById('channel').hidden"), false);
  EXPECT_EQ(
      page.evaluate("[...document.getElementById('channel').options].map(o => o.text).join('|')"),
      "all channels|channel 488 (c=0)|channel 561 (c=1)");
  EXPECT_EQ(page.evaluate("document.getElementById('channel').value"), "561");

  // The picker: every channel, then 488 alone.
  const auto pick = [&](const std::string& value) {
    page.evaluate("(() => { const s = document.getElementById('channel'); s.value = '" + value +
                  "'; s.dispatchEvent(new Event('change'));"
                  " window.fbview.channelsDrawn = {}; })()");
  };
  pick("");
  page.wait_for("window.fbview.channelsDrawn['488'] > 2 && window.fbview.channelsDrawn['561'] > 2",
                30s);
  EXPECT_EQ(page.evaluate("location.search"), "?stream=cam");
  pick("488");
  page.wait_for("window.fbview.channelsDrawn['488'] > 10", 30s);
  // One frame asked for before the switch may still be of 561.
  EXPECT_LE(page.evaluate("window.fbview.channelsDrawn['561'] || 0").get<int>(), 1);
  EXPECT_EQ(page.evaluate("location.search"), "?stream=cam&channel=488");
  EXPECT_NE(page.evaluate("document.getElementById('overlay').textContent")
                .get<std::string>()
                .find("channel 488  (only this channel)"),
            std::string::npos);
  EXPECT_TRUE(page.console_errors().empty()) << page.console_errors().front();
}
