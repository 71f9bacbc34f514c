// Encode and decode throughput of every compression codec, in GB/s of fp32 input, on one CPU
// thread and (when built with CUDA and a GPU is present) on the GPU. memcpy of the same bytes is
// the reference row. Writes a JSON file and a markdown table per device.
//
//   compression_bench [--elements N] [--repeats R] [--output-dir DIR] [--devices cpu,gpu]
//
// "memory share" is how much of the device's memory bandwidth, as its reference copy measures it,
// a codec's encode uses: the bytes it moves (the fp32 input read, the payload written, and with
// error feedback the residual read and written back) per second, over the copy's (read + write).
// The GPU target is int8 encode with error feedback at 60 % or more.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/compression/codec.h"
#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
#include "csrc/compression/cuda_buffer.h"
#include "csrc/compression/cuda_codec.h"
#endif

namespace {

namespace tc = torchwan::compression;
using Clock = std::chrono::steady_clock;

struct Settings {
  size_t elements = size_t{1} << 24;  // 64 MiB of fp32: far larger than any cache
  int repeats = 7;
  std::string output_dir = TORCHWAN_BENCH_RESULTS_DIR;
  bool cpu = true;
  bool gpu = true;
};

struct Case {
  std::string name;
  tc::CodecConfig config;
  bool error_feedback = false;
};

struct Row {
  std::string name;
  double ratio = 0;
  double encode_gbps = 0;
  double decode_gbps = 0;
  double decode_accumulate_gbps = 0;
  double round_trip_gbps = 0;  // bytes / (encode time + decode time)
  double encode_memory_share = 0;  // see the top of this file
};

// Bytes an encode reads and writes per byte of fp32 input.
double encode_traffic_per_input_byte(double ratio, bool error_feedback) {
  return 1.0 + 1.0 / ratio + (error_feedback ? 2.0 : 0.0);
}

// Fills encode_memory_share of every row from the reference row (rows[0], a plain copy).
void add_memory_shares(std::vector<Row>& rows, const std::vector<Case>& codecs) {
  const double copy_traffic_gbps = 2.0 * rows.front().encode_gbps;
  rows.front().encode_memory_share = 1.0;
  for (size_t i = 1; i < rows.size(); ++i) {
    rows[i].encode_memory_share =
        rows[i].encode_gbps *
        encode_traffic_per_input_byte(rows[i].ratio, codecs[i - 1].error_feedback) /
        copy_traffic_gbps;
  }
}

Settings parse(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--elements") {
      settings.elements = std::stoull(value);
    } else if (flag == "--repeats") {
      settings.repeats = std::stoi(value);
    } else if (flag == "--output-dir") {
      settings.output_dir = value;
    } else if (flag == "--devices") {
      settings.cpu = value.find("cpu") != std::string::npos;
      settings.gpu = value.find("gpu") != std::string::npos;
      if (!settings.cpu && !settings.gpu) {
        throw std::invalid_argument("--devices takes cpu, gpu or cpu,gpu; got " + value);
      }
    } else {
      throw std::invalid_argument("unknown flag " + flag);
    }
  }
  return settings;
}

std::vector<Case> cases() {
  auto make = [](std::string name, tc::Codec codec) {
    Case c{std::move(name), {}, false};
    c.config.codec = codec;
    return c;
  };
  std::vector<Case> all = {make("fp16", tc::Codec::kFloat16),
                           make("bf16", tc::Codec::kBFloat16),
                           make("int8_block256", tc::Codec::kInt8Block),
                           make("fp8_e4m3_block256", tc::Codec::kFloat8Block),
                           make("sign_block256", tc::Codec::kSignBlock),
                           make("topk_1%", tc::Codec::kTopK)};
  Case stochastic = make("int8_block256_stochastic", tc::Codec::kInt8Block);
  stochastic.config.stochastic_rounding = true;
  stochastic.config.seed = 7;
  all.push_back(stochastic);
  Case ef = make("int8_block256_error_feedback", tc::Codec::kInt8Block);
  ef.error_feedback = true;
  all.push_back(ef);
  Case sign_ef = make("sign_block256_error_feedback", tc::Codec::kSignBlock);
  sign_ef.error_feedback = true;
  all.push_back(sign_ef);
  return all;
}

// Best of `repeats` runs (the least disturbed by other load), in seconds.
double best_seconds(int repeats, const std::function<void()>& body) {
  body();  // warm up: page faults, caches
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    body();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

std::vector<float> gradient_like(size_t count) {
  std::mt19937 generator(1);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  std::vector<float> values(count);
  for (float& value : values) value = normal(generator);
  return values;
}

std::vector<Row> run_cpu(const Settings& settings) {
  const size_t n = settings.elements;
  const double bytes = 4.0 * static_cast<double>(n);
  const std::vector<float> input = gradient_like(n);
  std::vector<float> output(n);
  std::vector<float> residual(n, 0.0f);
  std::vector<Row> rows;
  {
    std::vector<float> copy(n);
    const double t = best_seconds(
        settings.repeats, [&] { std::memcpy(copy.data(), input.data(), n * sizeof(float)); });
    rows.push_back({"memcpy (reference)", 1.0, bytes / t / 1e9, bytes / t / 1e9, bytes / t / 1e9,
                    bytes / (2 * t) / 1e9});
  }
  for (const Case& c : cases()) {
    std::vector<uint8_t> payload(tc::encoded_size(c.config, n));
    const double encode_s = best_seconds(settings.repeats, [&] {
      if (c.error_feedback) {
        tc::encode_with_error_feedback(c.config, input, residual, payload);
      } else {
        tc::encode(c.config, input, payload);
      }
    });
    const double decode_s = best_seconds(settings.repeats, [&] { tc::decode(payload, output); });
    const double accumulate_s =
        best_seconds(settings.repeats, [&] { tc::decode_accumulate(payload, output); });
    rows.push_back({c.name, bytes / static_cast<double>(payload.size()), bytes / encode_s / 1e9,
                    bytes / decode_s / 1e9, bytes / accumulate_s / 1e9,
                    bytes / (encode_s + decode_s) / 1e9});
    std::fprintf(stderr, "cpu %-30s encode %6.2f GB/s  decode %6.2f GB/s\n", c.name.c_str(),
                 rows.back().encode_gbps, rows.back().decode_gbps);
  }
  add_memory_shares(rows, cases());
  return rows;
}

#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
// GPU time of `body` queued on `stream`, best of `repeats`, via CUDA events.
double best_gpu_seconds(int repeats, cudaStream_t stream, const std::function<void()>& body) {
  cudaEvent_t start;
  cudaEvent_t stop;
  tc::cuda::check(cudaEventCreate(&start), "cudaEventCreate");
  tc::cuda::check(cudaEventCreate(&stop), "cudaEventCreate");
  body();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    cudaEventRecord(start, stream);
    body();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    best = std::min(best, ms * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

std::vector<Row> run_gpu(const Settings& settings) {
  const size_t n = settings.elements;
  const double bytes = 4.0 * static_cast<double>(n);
  cudaStream_t stream;
  tc::cuda::check(cudaStreamCreate(&stream), "cudaStreamCreate");
  std::vector<Row> rows;
  {
    const std::vector<float> host = gradient_like(n);
    tc::cuda::DeviceBuffer<float> input(n, stream);
    tc::cuda::DeviceBuffer<float> output(n, stream);
    tc::cuda::DeviceBuffer<float> residual(n, stream);
    tc::cuda::check(
        cudaMemcpyAsync(input.data(), host.data(), n * 4, cudaMemcpyHostToDevice, stream), "copy");
    tc::cuda::check(cudaMemsetAsync(residual.data(), 0, n * 4, stream), "memset");
    const double copy_s = best_gpu_seconds(settings.repeats, stream, [&] {
      cudaMemcpyAsync(output.data(), input.data(), n * 4, cudaMemcpyDeviceToDevice, stream);
    });
    rows.push_back({"cudaMemcpy D2D (reference)", 1.0, bytes / copy_s / 1e9, bytes / copy_s / 1e9,
                    bytes / copy_s / 1e9, bytes / (2 * copy_s) / 1e9});
    for (const Case& c : cases()) {
      const size_t size = tc::encoded_size(c.config, n);
      tc::cuda::DeviceBuffer<uint8_t> payload(size, stream);
      const double encode_s = best_gpu_seconds(settings.repeats, stream, [&] {
        if (c.error_feedback) {
          tc::cuda::encode_with_error_feedback(c.config, input.data(), residual.data(), n,
                                               payload.data(), size, stream);
        } else {
          tc::cuda::encode(c.config, input.data(), n, payload.data(), size, stream);
        }
      });
      // Decode includes its header read-back (one synchronisation), as a caller would see it.
      const double decode_s = best_gpu_seconds(settings.repeats, stream, [&] {
        tc::cuda::decode(payload.data(), size, output.data(), n, stream);
      });
      const double accumulate_s = best_gpu_seconds(settings.repeats, stream, [&] {
        tc::cuda::decode_accumulate(payload.data(), size, output.data(), n, stream);
      });
      rows.push_back({c.name, bytes / static_cast<double>(size), bytes / encode_s / 1e9,
                      bytes / decode_s / 1e9, bytes / accumulate_s / 1e9,
                      bytes / (encode_s + decode_s) / 1e9});
      std::fprintf(stderr, "gpu %-30s encode %7.1f GB/s  decode %7.1f GB/s\n", c.name.c_str(),
                   rows.back().encode_gbps, rows.back().decode_gbps);
    }
    cudaStreamSynchronize(stream);
  }
  cudaStreamDestroy(stream);
  add_memory_shares(rows, cases());
  return rows;
}
#endif

void write_results(const Settings& settings, const std::string& device_name,
                   const std::string& description, const std::vector<Row>& rows) {
  std::filesystem::create_directories(settings.output_dir);
  const std::string base = settings.output_dir + "/compression_" + device_name;
  std::ostringstream json;
  json << "{\n  \"device\": \"" << description << "\",\n  \"elements\": " << settings.elements
       << ",\n  \"repeats\": " << settings.repeats << ",\n  \"statistic\": \"best of repeats\""
       << ",\n  \"unit\": \"GB/s of fp32 input (1e9 bytes)\",\n  \"codecs\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    char line[512];
    std::snprintf(line, sizeof(line),
                  "    {\"codec\": \"%s\", \"compression_ratio\": %.3f, \"encode_gbps\": %.3f, "
                  "\"decode_gbps\": %.3f, \"decode_accumulate_gbps\": %.3f, "
                  "\"encode_plus_decode_gbps\": %.3f, \"encode_memory_share\": %.3f}%s\n",
                  r.name.c_str(), r.ratio, r.encode_gbps, r.decode_gbps, r.decode_accumulate_gbps,
                  r.round_trip_gbps, r.encode_memory_share, i + 1 < rows.size() ? "," : "");
    json << line;
  }
  json << "  ]\n}\n";
  std::ofstream(base + ".json") << json.str();
  std::ostringstream md;
  md << "# Compression codec throughput: " << description << "\n\n"
     << settings.elements << " fp32 elements (" << settings.elements * 4 / (1 << 20)
     << " MiB), best of " << settings.repeats
     << " runs, GB/s of fp32 input. encode+decode = bytes / (encode time + decode time). "
        "memory share = the encode's bytes read and written per second over the reference "
        "copy's (bench/compression/compression_bench.cc).\n\n"
     << "| codec | ratio vs fp32 | encode GB/s | decode GB/s | decode-accumulate GB/s | "
        "encode+decode GB/s | encode memory share |\n|---|---:|---:|---:|---:|---:|---:|\n";
  for (const Row& r : rows) {
    char line[512];
    std::snprintf(line, sizeof(line), "| %s | %.2fx | %.2f | %.2f | %.2f | %.2f | %.0f%% |\n",
                  r.name.c_str(), r.ratio, r.encode_gbps, r.decode_gbps, r.decode_accumulate_gbps,
                  r.round_trip_gbps, 100.0 * r.encode_memory_share);
    md << line;
  }
  std::ofstream(base + ".md") << md.str();
  std::printf("%s", md.str().c_str());
}

// "one CPU thread (<model name>)", so a results file says what it was measured on.
std::string cpu_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return "one CPU thread (" + line.substr(colon + 2) + ")";
    }
  }
  return "one CPU thread";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Settings settings = parse(argc, argv);
    if (settings.cpu) write_results(settings, "cpu", cpu_description(), run_cpu(settings));
#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
    if (!settings.gpu) {
      // asked for the CPU only
    } else if (tc::cuda::device_available()) {
      cudaDeviceProp properties{};
      cudaGetDeviceProperties(&properties, 0);
      write_results(settings, "gpu", properties.name, run_gpu(settings));
    } else {
      std::fprintf(stderr, "no CUDA device: GPU rows skipped\n");
    }
#endif
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "compression_bench: %s\n", error.what());
    return 1;
  }
}
