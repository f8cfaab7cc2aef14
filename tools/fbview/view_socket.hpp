// One tab's WebSocket. Text messages from the page: {"type":"ready", max_width, max_height,
// region, auto, black, white, gamma, channel} after it drew a frame (channel: a channel name
// or index of the sequence to show alone, null or "" for all; absent: as before),
// {"type":"restyle", auto, black, white, gamma} when levels or gamma change (the last frame comes
// again in that style, its header has "restyled": true), and {"type":"probe", x, y}. Numbers out of
// range are clamped. To the page: one binary message per frame (u32 LE header length, JSON header,
// 8-bit pixels; the header's "sequence" gives the frame's id, index and channel name in its
// sequence, and "channel_filter" the channel shown alone), and text
// {"type":"status"|"error"|"probe", ...}. A malformed message gets an error message; the socket
// stays open.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

#include "framebroker/options.hpp"

namespace framebroker::fbview {

// Takes over the socket, answers the upgrade and serves until either side closes.
void serve_view_socket(boost::asio::ip::tcp::socket socket,
                       boost::beast::http::request<boost::beast::http::string_body> upgrade,
                       const ConnectOptions& connect, const std::string& stream,
                       const std::string& channel = "");

}  // namespace framebroker::fbview
