// The CUDA codecs give the same bytes as the CPU reference: payloads, error-feedback residuals
// and decoded values, for every codec, odd sizes and special values; and they reject malformed
// payloads before touching memory. Skipped without a CUDA build or without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "compression_test_util.h"
#include "csrc/compression/codec.h"
#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)
#include "csrc/compression/cuda_buffer.h"
#include "csrc/compression/cuda_codec.h"
#endif

namespace torchwan::compression {
namespace {

#if defined(TORCHWAN_COMPRESSION_HAVE_CUDA)

using testing::bits;
using testing::gradient_like;

// Float vectors equal bit for bit, except that any NaN matches any NaN (x86 and CUDA arithmetic
// produce different NaN bits; payload bytes never carry computed NaNs, see scalar_math.h).
void expect_same_floats(const std::vector<float>& actual, const std::vector<float>& expected,
                        const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(actual[i]) && std::isnan(expected[i])) continue;
    ASSERT_EQ(bits(actual[i]), bits(expected[i])) << what << " element " << i;
  }
}

class CompressionCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
    cuda::check(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }
  void TearDown() override {
    if (stream_ != nullptr) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }

  template <class T>
  cuda::DeviceBuffer<T> to_device(const std::vector<T>& host) {
    cuda::DeviceBuffer<T> device(host.size(), stream_);
    if (!host.empty()) {
      cuda::check(cudaMemcpyAsync(device.data(), host.data(), host.size() * sizeof(T),
                                  cudaMemcpyHostToDevice, stream_),
                  "copy");
    }
    return device;
  }

  template <class T>
  std::vector<T> to_host(const cuda::DeviceBuffer<T>& device) {
    std::vector<T> host(device.size());
    if (!host.empty()) {
      cuda::check(cudaMemcpyAsync(host.data(), device.data(), host.size() * sizeof(T),
                                  cudaMemcpyDeviceToHost, stream_),
                  "copy");
    }
    cuda::check(cudaStreamSynchronize(stream_), "synchronize");
    return host;
  }

  // Encodes on both sides (with error feedback when `residual` is not empty) and compares the
  // payload, the residual, decode and decode-accumulate.
  void compare(const CodecConfig& config, const std::vector<float>& input,
               const std::vector<float>& residual, const std::string& what) {
    const size_t n = input.size();
    const size_t size = encoded_size(config, n);
    const bool feedback = !residual.empty();
    std::vector<uint8_t> cpu_payload(size);
    std::vector<float> cpu_residual = residual;
    if (feedback) {
      encode_with_error_feedback(config, input, cpu_residual, cpu_payload);
    } else {
      encode(config, input, cpu_payload);
    }
    auto device_input = to_device(input);
    auto device_residual = to_device(residual);
    cuda::DeviceBuffer<uint8_t> device_payload(size, stream_);
    const size_t written =
        feedback
            ? cuda::encode_with_error_feedback(config, device_input.data(), device_residual.data(),
                                               n, device_payload.data(), size, stream_)
            : cuda::encode(config, device_input.data(), n, device_payload.data(), size, stream_);
    ASSERT_EQ(written, size) << what;
    ASSERT_EQ(to_host(device_payload), cpu_payload) << what << ": payload bytes differ";
    if (feedback) expect_same_floats(to_host(device_residual), cpu_residual, what + " residual");

    std::vector<float> cpu_output(n);
    decode(cpu_payload, cpu_output);
    cuda::DeviceBuffer<float> device_output(n, stream_);
    cuda::decode(device_payload.data(), size, device_output.data(), n, stream_);
    expect_same_floats(to_host(device_output), cpu_output, what + " decode");

    std::vector<float> cpu_sum = gradient_like(n, 99);
    auto device_sum = to_device(cpu_sum);
    decode_accumulate(cpu_payload, cpu_sum);
    cuda::decode_accumulate(device_payload.data(), size, device_sum.data(), n, stream_);
    expect_same_floats(to_host(device_sum), cpu_sum, what + " decode_accumulate");
  }

  cudaStream_t stream_ = nullptr;
};

std::string describe(const CodecConfig& config, size_t n, bool feedback) {
  return std::string(codec_name(config.codec)) + (config.stochastic_rounding ? "+sr" : "") +
         " block " + std::to_string(config.block_size) + " n " + std::to_string(n) +
         (feedback ? " error feedback" : "");
}

TEST_F(CompressionCuda, EncodeAndDecodeMatchCpuBytes) {
  for (const CodecConfig& config : testing::all_configs()) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{31}, size_t{33}, size_t{1000},
                     size_t{256 * 1000 + 17}, size_t{1} << 20}) {
      const std::vector<float> input = gradient_like(n, static_cast<uint32_t>(n));
      compare(config, input, {}, describe(config, n, false));
    }
  }
}

TEST_F(CompressionCuda, ErrorFeedbackMatchesCpu) {
  for (const CodecConfig& config : testing::all_configs()) {
    for (size_t n : {size_t{1}, size_t{1000}, size_t{300007}}) {
      const std::vector<float> input = gradient_like(n, 5);
      std::vector<float> residual = gradient_like(n, 6);
      for (float& value : residual) value *= 0.01f;
      compare(config, input, residual, describe(config, n, true));
    }
  }
}

TEST_F(CompressionCuda, SpecialValuesMatchCpu) {
  std::vector<float> input = gradient_like(5000, 7);
  const float specials[] = {std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max(),
                            1e-40f,
                            -0.0f};
  for (size_t i = 0; i < std::size(specials); ++i) input[300 * i + 11] = specials[i];
  // A block of only denormals and a block of only zeros.
  for (size_t i = 4096; i < 4352; ++i) input[i] = 1e-42f * static_cast<float>(i % 7);
  for (size_t i = 4352; i < 4608; ++i) input[i] = 0.0f;
  std::vector<float> residual(input.size(), 1e-3f);
  residual[77] = std::numeric_limits<float>::quiet_NaN();
  for (const CodecConfig& config : testing::all_configs()) {
    compare(config, input, {}, describe(config, input.size(), false) + " specials");
    compare(config, input, residual, describe(config, input.size(), true) + " specials");
  }
}

TEST_F(CompressionCuda, TopKTiesMatchCpu) {
  CodecConfig config;
  config.codec = Codec::kTopK;
  std::vector<float> ties(200000, 0.25f);
  for (size_t i = 0; i < ties.size(); i += 3) ties[i] = -0.25f;
  for (size_t i = 0; i < ties.size(); i += 1001) ties[i] = 1.0f;
  for (double fraction : {0.001, 0.01, 0.3, 1.0}) {
    config.topk_fraction = fraction;
    compare(config, ties, {}, "ties " + std::to_string(fraction));
    compare(config, std::vector<float>(5000, 0.0f), {}, "zeros " + std::to_string(fraction));
  }
}

TEST_F(CompressionCuda, MalformedPayloadsAreRejected) {
  CodecConfig config;
  config.codec = Codec::kInt8Block;
  const std::vector<float> input = gradient_like(1000, 8);
  std::vector<uint8_t> good(encoded_size(config, input.size()));
  encode(config, input, good);
  std::vector<float> output(input.size());
  cuda::DeviceBuffer<float> device_output(output.size(), stream_);
  auto device_good = to_device(good);
  for (size_t length : {size_t{0}, size_t{10}, kHeaderSize, good.size() - 1, good.size() + 1}) {
    EXPECT_THROW(
        cuda::decode(device_good.data(), length, device_output.data(), output.size(), stream_),
        CompressionError)
        << length;
  }
  for (size_t byte = 0; byte < kHeaderSize; ++byte) {
    auto bad = good;
    bad[byte] ^= 0x40;
    auto device_bad = to_device(bad);
    EXPECT_THROW(
        cuda::decode(device_bad.data(), bad.size(), device_output.data(), output.size(), stream_),
        CompressionError)
        << byte;
  }
  CodecConfig topk;
  topk.codec = Codec::kTopK;
  topk.topk_fraction = 0.05;
  std::vector<uint8_t> sparse(encoded_size(topk, input.size()));
  encode(topk, input, sparse);
  const uint32_t out_of_range = 1000;
  std::memcpy(sparse.data() + kHeaderSize + 8, &out_of_range, 4);
  auto device_sparse = to_device(sparse);
  const std::vector<float> sentinel(output.size(), 7.0f);
  auto device_sum = to_device(sentinel);
  EXPECT_THROW(cuda::decode_accumulate(device_sparse.data(), sparse.size(), device_sum.data(),
                                       output.size(), stream_),
               CompressionError);
  EXPECT_EQ(to_host(device_sum), sentinel);  // nothing written
}

#else

TEST(CompressionCuda, SkippedWithoutCudaBuild) {
  GTEST_SKIP() << "torchwan_compression was built without CUDA";
}

#endif

}  // namespace
}  // namespace torchwan::compression
