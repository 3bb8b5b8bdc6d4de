#include "loadtest/metrics_scrape.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace visionserve::loadtest {

absl::StatusOr<std::string> HttpGet(absl::string_view url, absl::Duration timeout) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("metrics URL must start with http://: ", url));
  }
  const size_t slash = rest.find('/');
  const absl::string_view hostport = rest.substr(0, slash);
  const std::string path = slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  const size_t colon = hostport.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("metrics URL needs HOST:PORT: ", url));
  }
  std::string host(hostport.substr(0, colon));
  const std::string port(hostport.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &addrs); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", hostport, ": ", gai_strerror(rc)));
  }
  timeval tv{};
  const int64_t us = absl::ToInt64Microseconds(timeout);
  tv.tv_sec = us / 1000000;
  tv.tv_usec = us % 1000000;
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a = addrs; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // bounds connect() too
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    error = std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(addrs);
  if (fd < 0)
    return absl::UnavailableError(absl::StrCat("cannot connect to ", hostport, ": ", error));

  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", hostport, "\r\nConnection: close\r\n\r\n");
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return absl::UnavailableError(absl::StrCat("sending to ", hostport, " failed"));
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[16384];
  while (true) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      close(fd);
      return absl::DeadlineExceededError(
          absl::StrCat("reading from ", hostport, " failed or timed out"));
    }
    response.append(buf, static_cast<size_t>(n));
    if (response.size() > (64 << 20)) {
      close(fd);
      return absl::ResourceExhaustedError("metrics response over 64 MiB");
    }
  }
  close(fd);
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("malformed HTTP response from ", url));
  }
  const absl::string_view head(response.data(), header_end);
  const absl::string_view status_line = head.substr(0, head.find("\r\n"));
  std::vector<absl::string_view> parts = absl::StrSplit(status_line, absl::MaxSplits(' ', 2));
  if (parts.size() < 2 || parts[1] != "200") {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": ", status_line));
  }
  if (absl::StrContains(absl::AsciiStrToLower(head), "transfer-encoding: chunked")) {
    return absl::UnimplementedError("chunked HTTP responses are not supported");
  }
  return response.substr(header_end + 4);
}

absl::string_view SeriesName(absl::string_view series) {
  return series.substr(0, series.find('{'));
}

absl::StatusOr<MetricSamples> ParsePrometheusText(absl::string_view text) {
  MetricSamples out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    // The series ends at the first space outside a {...} label block (label values are quoted
    // and may contain spaces, braces and escaped quotes).
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    if (i < line.size() && line[i] == '{') {
      bool quoted = false;
      for (++i; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
          if (c == '\\') {
            ++i;
          } else if (c == '"') {
            quoted = false;
          }
        } else if (c == '"') {
          quoted = true;
        } else if (c == '}') {
          break;
        }
      }
      if (i >= line.size()) {
        return absl::InvalidArgumentError(absl::StrCat("metrics line ", line_no, ": unclosed {"));
      }
      ++i;
    }
    const absl::string_view series = line.substr(0, i);
    std::vector<absl::string_view> fields =
        absl::StrSplit(line.substr(i), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    double value = 0;
    if (series.empty() || fields.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("metrics line ", line_no, ": no value"));
    }
    if (!absl::SimpleAtod(fields[0], &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics line ", line_no, ": bad value \"", fields[0], "\""));
    }
    out[std::string(series)] = value;
  }
  return out;
}

MetricSamples CounterDeltas(const MetricSamples& before, const MetricSamples& after) {
  MetricSamples out;
  for (const auto& [series, value] : after) {
    const absl::string_view name = SeriesName(series);
    if (!absl::EndsWith(name, "_total") && !absl::EndsWith(name, "_count") &&
        !absl::EndsWith(name, "_sum")) {
      continue;
    }
    const auto it = before.find(series);
    const double delta = value - (it == before.end() ? 0.0 : it->second);
    if (delta != 0 && std::isfinite(delta)) out[series] = delta;
  }
  return out;
}

double SumByName(const MetricSamples& samples, absl::string_view name) {
  double sum = 0;
  for (auto it = samples.lower_bound(std::string(name)); it != samples.end(); ++it) {
    if (SeriesName(it->first) != name) {
      if (!absl::StartsWith(it->first, name)) break;
      continue;
    }
    sum += it->second;
  }
  return sum;
}

}  // namespace visionserve::loadtest
